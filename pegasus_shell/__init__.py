"""pegasus_shell: the operator's shell. Talks to servers only over the wire (uses
pegasus_server.{base, errors, rpc}), so it also works against an upstream Pegasus cluster."""
