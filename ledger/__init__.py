"""Records, canonical encoding, Merkle tree, blocks, checkpoints, state, storage and audit."""
