// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream idl/command.thrift (remote commands, RPC_CLI_CLI_CALL).

struct command {
  1: string cmd;
  2: list<string> arguments;
}

// Documentation only.
service remoteCmdService {
  string callCommand(1: command cmd);
}
