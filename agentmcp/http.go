package agentmcp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BackendFunc chooses the backend that serves one HTTP request, for
// RequestHandler: the daemon's configured workspace, or a scope of it named
// by a request header. release, if not nil, is called when the request is
// done (to close a scope made for it). An error refuses the request: a
// *RequestError with its status and body, any other error with 500.
type BackendFunc func(r *http.Request) (b ab.FileBackend, release func(), err error)

// RequestError refuses an HTTP request before any MCP is spoken, with the
// JSON body {"error": Title, "message": Message} the agent-backend daemon
// answers with (for example 403 "Root directory mismatch").
type RequestError struct {
	Status  int
	Title   string
	Message string
}

// Error returns "Title: Message".
func (e *RequestError) Error() string { return e.Title + ": " + e.Message }

// Handler returns an http.Handler serving NewServer(b, opts) over MCP
// Streamable HTTP, stateless: each request is answered on its own, with no
// session to remember, as the agent-backend daemon's POST /mcp is.
// Responses are JSON (not event streams). Mount it where the daemon serves
// /mcp; authentication belongs in front of it.
func Handler(b ab.FileBackend, opts *Options) http.Handler {
	return RequestHandler(func(*http.Request) (ab.FileBackend, func(), error) { return b, nil, nil }, opts)
}

// RequestHandler is Handler with the backend chosen per request by fn.
//
// An MCP server is built once per tool set (with or without exec, and
// without the tools a backend's permissions deny outright) and shared by
// every request that gets that set; each request's tool calls run on its
// own backend, carried in the request's context. A backend fn made for the
// request (release not nil) gets no background-process tools, since the
// processes would end with it; a backend that outlives requests keeps its
// processes from one request to the next (stateless as the protocol is).
func RequestHandler(fn BackendFunc, opts *Options) http.Handler {
	toolsetOf := func(ctx context.Context) *toolset {
		t, _ := ctx.Value(toolsetKey{}).(*toolset)
		return t
	}
	var mu sync.Mutex
	servers := map[toolFilter]*mcp.Server{}
	sdk := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		t := toolsetOf(r.Context())
		if t == nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		s := servers[t.filter]
		if s == nil {
			s = newServer(opts, t.filter, toolsetOf)
			servers[t.filter] = s
		}
		return s
	}, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, release, err := fn(r)
		if release != nil {
			defer release()
		}
		if err != nil {
			writeRequestError(w, err)
			return
		}
		t := newToolset(b, opts)
		if release != nil {
			// A backend made for this request (a scope) ends with it, and
			// its background processes with it: none to offer.
			t.filter.bg = false
		}
		sdk.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), toolsetKey{}, t)))
	})
}

type toolsetKey struct{}

func writeRequestError(w http.ResponseWriter, err error) {
	re := &RequestError{Status: http.StatusInternalServerError, Title: "Internal Server Error", Message: err.Error()}
	errors.As(err, &re)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(re.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": re.Title, "message": re.Message})
}
