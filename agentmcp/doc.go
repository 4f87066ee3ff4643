// Package agentmcp serves any agentbackend.FileBackend as MCP tools, and
// connects MCP clients to it.
//
// The tools are those of the official MCP filesystem server
// (@modelcontextprotocol/server-filesystem): the same names, input schemas
// and text outputs, so clients and prompts written for it work unchanged.
// They also accept the extra parameters of the agent-backend daemon
// (read_text_file offset/limit paging, replaceAll per edit, sortBy on
// search_files, includeDefaultExcludes on directory_tree), and tools are
// added: grep (answered by agentbackend.Grep); for backends that can run
// commands, exec; and for those that can run them in the background,
// run_in_background, read_output, kill_shell and list_shells (named and
// shaped as pydantic-ai-backend's console tools; exec also takes
// background: true), with send_input to type text and keys into a process
// started on a terminal (run_in_background with terminal: true).
//
// Each tool is defined once. NewServer registers the definitions on an MCP
// server; Tools returns them as plain definitions (name, description, JSON
// Schema, Call) for function-calling APIs that do not speak MCP. Both run
// the same code, built on the agent tools of the root package (ReadLines,
// Edit, Ls, Glob, Grep), so a tool behaves the same everywhere.
//
// Paths follow the workspace path rule of the root package: relative paths
// and absolute paths inside the workspace name what they say, other
// absolute paths are taken as relative to the workspace, and a path that
// leaves it is refused. A failed call is an MCP tool error (isError) whose
// text is worded as the filesystem server words it ("ENOENT: no such file or
// directory, open '/w/a.txt'"); bad input never ends a session.
//
// Ways to reach the tools:
//
//   - Connect: an in-process client session, closed with the backend;
//   - Handler and RequestHandler: stateless Streamable HTTP, as the
//     daemon's POST /mcp;
//   - ConnectStdio: a session with an `agent-backend daemon --local-only`
//     process speaking MCP on its standard input and output.
package agentmcp
