package agentmcp

import (
	"errors"

	ab "github.com/agentbackend/agentbackend"
)

// Permissions: a backend that is a scope with agentbackend.Permissions
// gets a tool set without the tools its permissions deny outright — under
// ReadOnlyPermissions there is no write_file, edit_file, create_directory,
// move_file or exec — and a call the permissions refuse is a tool error
// that says what is not allowed, by which rule and why, so the model can
// choose another way. Tools whose calls may be allowed (or asked about)
// stay, and each call is checked by the scope.

// toolAccesses lists the accesses each tool needs (see
// agentbackend.Permissions); a tool is left out when any of them is denied
// for every path or command.
var toolAccesses = map[string][]ab.Access{
	"read_file":                 {ab.AccessRead},
	"read_text_file":            {ab.AccessRead},
	"read_media_file":           {ab.AccessRead},
	"read_multiple_files":       {ab.AccessRead},
	"write_file":                {ab.AccessWrite},
	"edit_file":                 {ab.AccessRead, ab.AccessWrite},
	"create_directory":          {ab.AccessWrite},
	"list_directory":            {ab.AccessList},
	"list_directory_with_sizes": {ab.AccessList},
	"directory_tree":            {ab.AccessList},
	"move_file":                 {ab.AccessRead, ab.AccessDelete, ab.AccessWrite},
	"search_files":              {ab.AccessList},
	"get_file_info":             {ab.AccessRead},
	"list_allowed_directories":  nil,
	"exec":                      {ab.AccessExec},
	"run_in_background":         {ab.AccessExec},
	"read_output":               {ab.AccessExec},
	"send_input":                {ab.AccessExec},
	"kill_shell":                {ab.AccessExec},
	"list_shells":               {ab.AccessExec},
	"grep":                      {ab.AccessSearch},
}

// toolFilter says which tools a backend gets: exec or not, and the
// accesses its permissions deny outright (a bit per access, in the order
// of agentbackend.Accesses). It is comparable, so servers can be shared by
// every backend with the same filter.
type toolFilter struct {
	exec, bg bool
	denied   uint8
	network  ab.Network // what commands reach, when the backend says and runs them
}

// filterFor returns the filter of b.
func filterFor(b ab.FileBackend, opts *Options) toolFilter {
	f := toolFilter{exec: withExec(b, opts), bg: withBackground(b, opts)}
	if f.exec {
		f.network = networkOf(b)
	}
	for i, a := range allAccesses {
		if ab.AccessDenied(b, a) {
			f.denied |= 1 << i
		}
	}
	return f
}

// allAccesses is agentbackend.Accesses(), read once.
var allAccesses = ab.Accesses()

// serves reports whether the tool is in the set.
func (f toolFilter) serves(s *spec) bool {
	if s.exec && !f.exec || s.bg && !f.bg {
		return false
	}
	for _, a := range toolAccesses[s.name] {
		for i, d := range allAccesses {
			if d == a && f.denied&(1<<i) != 0 {
				return false
			}
		}
	}
	return true
}

// permissionHint ends the message of a refused call, so that the model
// does not retry it.
const permissionHint = " This is the workspace's permission policy, not a transient failure: do not retry; choose another path or approach, or ask the user."

// permissionError returns the tool error for a call the permissions
// refused, or nil when err is something else.
func permissionError(tool string, err error) error {
	if !errors.Is(err, ab.ErrPermissionDenied) && !errors.Is(err, ab.ErrApprovalRequired) {
		return nil
	}
	var e *ab.Error
	msg := err.Error()
	if errors.As(err, &e) {
		msg = e.Error()
	}
	if errors.Is(err, ab.ErrApprovalRequired) {
		return &ToolError{Tool: tool, Message: msg + ". The operation needs a person's approval, and none can be asked here.", Err: err}
	}
	return &ToolError{Tool: tool, Message: msg + "." + permissionHint, Err: err}
}
