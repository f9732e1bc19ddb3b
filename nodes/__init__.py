"""Department node process, configuration and the ``certledger`` command line."""
