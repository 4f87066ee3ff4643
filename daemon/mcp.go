package daemon

import "net/http"

// mcp serves one stateless MCP request on the workspace scoped to scope
// ("" for the whole workspace).
//
// TODO(issue 5): serve agentmcp.Handler on a backend built per request
// (the workspace, dangerous-command blocking on, scoped to scope) once the
// agentmcp package lands on main. Until then the endpoint answers 501 after
// the checks of serveMCP, so clients get the same 401/403/400 answers as
// from the reference daemon.
func (d *Daemon) mcp(w http.ResponseWriter, _ *http.Request, _ string) {
	writeJSON(w, http.StatusNotImplemented, errorBody{"Not implemented",
		"MCP over HTTP is not available in this build of the daemon yet; use WS /ssh"})
}
