package daemon

import (
	"cmp"
	"context"
	"net/http"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
)

// scopeKey carries the scope serveMCP chose to the backend function.
type scopeKey struct{}

// mcpHandler serves stateless MCP over Streamable HTTP: a fresh server per
// request, on the workspace (dangerous-command blocking on) or a scope of
// it made for the request and closed after it.
func (d *Daemon) mcpHandler() http.Handler {
	return agentmcp.RequestHandler(func(r *http.Request) (ab.FileBackend, func(), error) {
		scope, _ := r.Context().Value(scopeKey{}).(string)
		if scope == "" && d.cfg.Permissions == nil {
			return d.ws, nil, nil
		}
		s, err := d.ws.Scope(cmp.Or(scope, "."), &ab.ScopeConfig{Permissions: d.cfg.Permissions})
		if err != nil {
			return nil, nil, &agentmcp.RequestError{Status: http.StatusBadRequest, Title: "Invalid scope path",
				Message: "Scope path must not contain path traversal sequences"}
		}
		return s, func() { s.Close() }, nil
	}, &agentmcp.Options{Version: d.version(), Logger: d.log})
}

// mcp serves one checked POST /mcp request on the workspace scoped to scope
// ("" for the whole workspace).
func (d *Daemon) mcp(w http.ResponseWriter, r *http.Request, scope string) {
	d.mcpServer.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, scope)))
}
