"""The rules a record must pass before it is appended.

Validation is pure: it reads a :class:`StateView` and returns the
:class:`StateChange` the record would make, or raises with a stable reason
code. Nothing is written here, so a rejected record changes nothing.

Steps, in order (each labelled in the code):

1. Origin: the record names this ledger.
2. Time: the record's time is within the policy window of ``now`` (the
   submission time, or the block time during replay).
3. Signer: for licence records the agency is admitted, not removed, and the
   key is one of its keys, valid at the record's time and not retired by
   ``now`` (a removal or retirement is never dodged by backdating); for governance records
   enough distinct authorities signed (genesis threshold).
4. Signature(s) verify over the canonical record bytes (skipped only when the
   caller verified them already, e.g. in a parallel pre-pass).
5. Nonce: not used before by this signer.
6. Transition: the state machine below allows it, and the agency is
   authorised for the licence type and region.

Licence state machine::

    (none) --ISSUE--> ACTIVE --SUSPEND--> SUSPENDED --RESUME--> ACTIVE
    ACTIVE|SUSPENDED --AMEND (version+1)--> same status
    ACTIVE|SUSPENDED --REVOKE--> REVOKED   (terminal: nothing after it)

Only the issuing agency, or an agency that governance made an ``authority``
for the licence's region, may amend, suspend, resume or revoke.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ledger import reasons
from ledger.records import GOVERNANCE_TYPES, LICENCE_TYPES, RecordType, SignedRecord
from ledger.state import (
    GOVERNANCE_SIGNER,
    Agency,
    AgencyKey,
    LicenceState,
    LicenceStatus,
    Node,
    Policy,
    StateChange,
    StateView,
    agency_from_payload,
    node_from_payload,
    retire_key,
)
from signing.errors import AuthorizationError, ConflictError, InvalidInputError, VerificationError


def _policy(view: StateView) -> Policy:
    policy = view.policy()
    if policy is None:
        raise InvalidInputError("the ledger has no genesis record yet", reason=reasons.RECORD_ORIGIN)
    return policy


def signing_key_for(signed: SignedRecord, view: StateView) -> Agency | None:
    """The agency whose key signed a licence record, if the key is known."""
    return view.agency(signed.record.agency)


def verify_licence_signature(signed: SignedRecord, view: StateView) -> None:
    """Step 4 for a licence record alone (used by parallel pre-verification)."""
    agency = view.agency(signed.record.agency)
    key = agency.key(signed.record.key_id) if agency else None
    if key is None:
        raise AuthorizationError(
            f"key {signed.record.key_id[:16]}… is not a key of agency {signed.record.agency}",
            reason=reasons.AGENCY_KEY_UNKNOWN,
        )
    signed.verify_signature_by(key.public_key)


def check_governance_signatures(signed: SignedRecord, policy: Policy, *, verify: bool) -> None:
    # Step 3+4 for governance: every signature must be a known authority's and verify;
    # distinct authorities must reach the threshold
    signers: set[str] = set()
    for sig in signed.signatures:
        authority = policy.authority_by_key(sig.key_id)
        if authority is None:
            raise AuthorizationError(
                f"governance record signed by unknown key {sig.key_id[:16]}…",
                reason=reasons.GOVERNANCE_SIGNATURES,
            )
        if verify:
            signed.verify_signature_by(authority.public_key)
        signers.add(authority.id)
    if len(signers) < policy.governance_threshold:
        raise AuthorizationError(
            f"governance record has {len(signers)} authority signature(s); "
            f"the genesis policy requires {policy.governance_threshold}",
            reason=reasons.GOVERNANCE_SIGNATURES,
        )


def validate_genesis(signed: SignedRecord, *, verify_signatures: bool = True) -> StateChange:
    """The genesis record: index 0, signed by enough of the authorities it names."""
    record = signed.record
    if record.type is not RecordType.GENESIS:
        raise InvalidInputError("the first entry must be the GENESIS record", reason=reasons.RECORD_MALFORMED)
    policy = Policy.from_genesis(record)
    check_governance_signatures(signed, policy, verify=verify_signatures)
    agencies = tuple(agency_from_payload(a) for a in record.payload["agencies"])
    nodes = tuple(node_from_payload(n) for n in record.payload["nodes"])
    _check_unique_ids(agencies, nodes)
    return StateChange(
        index=0,
        nonce=(GOVERNANCE_SIGNER, record.nonce),
        policy=policy,
        genesis_agencies=agencies,
        genesis_nodes=nodes,
    )


def _check_unique_ids(agencies: tuple[Agency, ...], nodes: tuple[Node, ...]) -> None:
    ids = [a.id for a in agencies]
    key_ids = [k.key_id for a in agencies for k in a.keys]
    node_ids = [n.id for n in nodes]
    for what, items in (("agency IDs", ids), ("agency keys", key_ids), ("node IDs", node_ids)):
        if len(set(items)) != len(items):
            raise InvalidInputError(f"GENESIS repeats {what}", reason=reasons.GOVERNANCE_CONFLICT)


def validate(
    signed: SignedRecord,
    view: StateView,
    *,
    index: int,
    now: datetime,
    signatures_verified: bool = False,
) -> StateChange:
    """Check ``signed`` against ``view`` as entry ``index``; return its change or raise."""
    record = signed.record
    if record.type is RecordType.GENESIS:
        if index != 0:
            raise ConflictError("a ledger has exactly one GENESIS record", reason=reasons.GOVERNANCE_CONFLICT)
        return validate_genesis(signed, verify_signatures=not signatures_verified)
    policy = _policy(view)

    # 1. origin
    if record.origin != policy.origin:
        raise InvalidInputError(
            f"record is for ledger {record.origin!r}, this is {policy.origin!r}",
            reason=reasons.RECORD_ORIGIN,
        )
    # 2. time window
    window = timedelta(seconds=policy.time_window_seconds)
    if abs(record.time - now) > window:
        raise InvalidInputError(
            f"record time {record.time.isoformat()} is more than {policy.time_window_seconds}s "
            f"from the ledger time {now.isoformat()}",
            reason=reasons.TIME_OUT_OF_WINDOW,
        )
    if record.type in GOVERNANCE_TYPES:
        # 3 + 4. authorities
        check_governance_signatures(signed, policy, verify=not signatures_verified)
        # 5. nonce
        _check_nonce(view, GOVERNANCE_SIGNER, record.nonce)
        # 6. transition
        return _governance_change(signed, view, index, now)

    assert record.type in LICENCE_TYPES
    # 3. signer
    agency = view.agency(record.agency)
    if agency is None:
        raise AuthorizationError(f"agency {record.agency} is not admitted", reason=reasons.AGENCY_UNKNOWN)
    # removal and key retirement take effect when they are appended, whatever time a later
    # record claims: otherwise a removed agency or a retired (compromised) key could keep
    # signing, backdated, for as long as the clock-skew window
    if agency.removed_at is not None:
        raise AuthorizationError(f"agency {record.agency} was removed", reason=reasons.AGENCY_REMOVED)
    key = agency.key(record.key_id)
    if key is None:
        raise AuthorizationError(
            f"key {record.key_id[:16]}… is not a key of agency {record.agency}",
            reason=reasons.AGENCY_KEY_UNKNOWN,
        )
    if not key.valid_at(record.time) or (key.not_after is not None and key.not_after <= now):
        raise AuthorizationError(
            f"key {record.key_id[:16]}… of agency {record.agency} is not valid at {record.time.isoformat()}",
            reason=reasons.AGENCY_KEY_NOT_VALID,
        )
    # 4. signature
    if not signatures_verified:
        signed.verify_signature_by(key.public_key)
    # 5. nonce
    _check_nonce(view, agency.id, record.nonce)
    # 6. transition
    return _licence_change(signed, view, agency, index)


def _check_nonce(view: StateView, signer: str, nonce: str) -> None:
    if view.nonce_used(signer, nonce):
        raise ConflictError(f"nonce {nonce} was already used by {signer}", reason=reasons.NONCE_REPLAYED)


def _licence_change(signed: SignedRecord, view: StateView, agency: Agency, index: int) -> StateChange:
    record = signed.record
    p = record.payload
    current = view.licence(record.licence_id)
    change = StateChange(index=index, nonce=(agency.id, record.nonce))
    record_hash = record.record_hash()

    if record.type is RecordType.ISSUE:
        if current is not None:
            raise ConflictError(f"licence {record.licence_id} was already issued", reason=reasons.STATE_ALREADY_ISSUED)
        if not agency.covers_type(p["type_code"]):
            raise AuthorizationError(
                f"agency {agency.id} may not issue licence type {p['type_code']}", reason=reasons.AGENCY_SCOPE_TYPE
            )
        if not agency.covers_region(p["region"]):
            raise AuthorizationError(
                f"agency {agency.id} may not issue in region {p['region']}", reason=reasons.AGENCY_SCOPE_REGION
            )
        change.licence = LicenceState(
            licence_id=record.licence_id,
            status=LicenceStatus.ACTIVE,
            version=1,
            issuer=agency.id,
            type_code=p["type_code"],
            region=p["region"],
            files=dict(p["files"]),
            metadata=dict(p.get("metadata", {})),
            issued_at=record.time,
            updated_at=record.time,
            latest_index=index,
            latest_record_hash=record_hash,
        )
        return change

    if current is None:
        raise InvalidInputError(
            f"licence {record.licence_id} is not on this ledger", reason=reasons.STATE_UNKNOWN_LICENCE
        )
    if current.status is LicenceStatus.REVOKED:
        raise ConflictError(f"licence {record.licence_id} is revoked: nothing may follow", reason=reasons.STATE_REVOKED)
    if agency.id != current.issuer and not (agency.authority and agency.covers_region(current.region)):
        raise AuthorizationError(
            f"agency {agency.id} is neither the issuer of {record.licence_id} nor an authority for its region",
            reason=reasons.STATE_NOT_ISSUER,
        )
    base = replace(current, updated_at=record.time, latest_index=index, latest_record_hash=record_hash)

    if record.type is RecordType.AMEND:
        if p["version"] != current.version + 1:
            raise ConflictError(
                f"AMEND must carry version {current.version + 1}; got {p['version']}",
                reason=reasons.STATE_STALE_VERSION,
            )
        if p["type_code"] != current.type_code or p["region"] != current.region:
            raise InvalidInputError("AMEND may not change the licence type or region", reason=reasons.STATE_TYPE_CHANGE)
        change.licence = replace(
            base,
            version=p["version"],
            files=dict(p["files"]),
            metadata=dict(p.get("metadata", {})),
            superseded_files=(*current.superseded_files, *sorted(current.files.values())),
        )
    elif record.type is RecordType.SUSPEND:
        if current.status is LicenceStatus.SUSPENDED:
            raise ConflictError(
                f"licence {record.licence_id} is already suspended", reason=reasons.STATE_ALREADY_SUSPENDED
            )
        change.licence = replace(base, status=LicenceStatus.SUSPENDED)
    elif record.type is RecordType.RESUME:
        if current.status is not LicenceStatus.SUSPENDED:
            raise ConflictError(f"licence {record.licence_id} is not suspended", reason=reasons.STATE_NOT_SUSPENDED)
        change.licence = replace(base, status=LicenceStatus.ACTIVE)
    elif record.type is RecordType.REVOKE:
        change.licence = replace(
            base, status=LicenceStatus.REVOKED, revocation_reason=f"{p['reason_code']}: {p['reason_text']}"
        )
    return change


def _governance_change(signed: SignedRecord, view: StateView, index: int, now: datetime) -> StateChange:
    record = signed.record
    p = record.payload
    change = StateChange(index=index, nonce=(GOVERNANCE_SIGNER, record.nonce))
    if record.type is RecordType.AGENCY_ADMIT:
        agency = agency_from_payload(p["agency"])
        existing = view.agency(agency.id)
        if existing is not None and existing.removed_at is None:
            raise ConflictError(f"agency {agency.id} is already admitted", reason=reasons.GOVERNANCE_CONFLICT)
        for k in agency.keys:
            owner = view.agency_by_key(k.key_id)
            if owner is not None and owner.id != agency.id:
                raise ConflictError(
                    f"key {k.key_id[:16]}… belongs to agency {owner.id}", reason=reasons.GOVERNANCE_CONFLICT
                )
        change.agency = agency
    elif record.type is RecordType.AGENCY_ROTATE_KEY:
        agency_or_none = view.agency(p["agency_id"])
        if agency_or_none is None or agency_or_none.removed_at is not None:
            raise InvalidInputError(f"agency {p['agency_id']} is not admitted", reason=reasons.AGENCY_UNKNOWN)
        new_key = AgencyKey.from_json(p["new_key"])
        if view.agency_by_key(new_key.key_id) is not None:
            raise ConflictError("the new key is already registered", reason=reasons.GOVERNANCE_CONFLICT)
        agency = agency_or_none
        if p.get("retire_key_id"):
            if agency.key(p["retire_key_id"]) is None:
                raise InvalidInputError("retire_key_id is not a key of this agency", reason=reasons.AGENCY_KEY_UNKNOWN)
            # retired when appended: a record dated ahead (within the time window) must not leave the
            # old key signing until its own time
            agency = retire_key(agency, p["retire_key_id"], min(record.time, now))
        change.agency = replace(agency, keys=(*agency.keys, new_key))
    elif record.type is RecordType.AGENCY_REMOVE:
        agency_or_none = view.agency(p["agency_id"])
        if agency_or_none is None or agency_or_none.removed_at is not None:
            raise InvalidInputError(f"agency {p['agency_id']} is not admitted", reason=reasons.AGENCY_UNKNOWN)
        change.agency = replace(agency_or_none, removed_at=record.time)
    elif record.type is RecordType.NODE_ADMIT:
        node = node_from_payload(p["node"])
        existing_node = view.node(node.id)
        if existing_node is not None and existing_node.removed_at is None:
            raise ConflictError(f"node {node.id} is already admitted", reason=reasons.GOVERNANCE_CONFLICT)
        change.node = node
    elif record.type is RecordType.NODE_REMOVE:
        existing_node = view.node(p["node_id"])
        if existing_node is None or existing_node.removed_at is not None:
            raise InvalidInputError(f"node {p['node_id']} is not admitted", reason=reasons.GOVERNANCE_CONFLICT)
        policy = view.policy()
        left = view.admitted_nodes() - {existing_node.id}
        if policy is not None and len(left) < policy.quorum_threshold:
            # below the quorum no checkpoint could ever be final again, and a single node would
            # have removed the only proposer: the ledger would be stuck for good
            raise ConflictError(
                f"removing node {existing_node.id} leaves {len(left)} admitted node(s), fewer than the "
                f"quorum of {policy.quorum_threshold}",
                reason=reasons.GOVERNANCE_BELOW_QUORUM,
            )
        change.node = replace(existing_node, removed_at=record.time)
    return change


__all__ = ["VerificationError", "validate", "validate_genesis", "verify_licence_signature"]
