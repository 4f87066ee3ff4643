package agentbackend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Permissions decide, operation by operation, what an agent may do through
// a scope: allow it, deny it, or ask a human (an Approver) first. Set them
// with ScopeConfig.Permissions; every backend gets them, because the scope
// is the one place they are enforced.
//
// # Accesses
//
// Every operation needs one or more accesses, each with its own Policy:
//
//	read    Read, Stat, Exists (and ReadLines, ReadPage, Edit's read)
//	list    ReadDir, ReadDirInfo, LsInfo, Glob (on the directory listed)
//	search  Grep (on the path searched)
//	write   Write, Mkdir, Touch, Edit's write, the target of Rename
//	delete  Remove, the source of Rename
//	exec    Exec (on the command line)
//	network a command's connections through the backend's filtering
//	        proxy (on the host name and port; see Network)
//
// The source of a Rename needs read as well as delete (a move must not carry
// an unreadable file to a readable name), and a recursive Remove or a Rename
// is refused when a Deny or Ask rule of its accesses names something below
// the path it moves or removes (see Rule).
//
// # Rules
//
// A Policy has a Default action and ordered Rules; the first rule whose
// pattern matches decides, else the default does. An empty Default allows,
// so the zero Permissions allow everything. File patterns are doublestar
// globs (`*`, `?`, `[a-z]`, `{a,b}`, `**` for any number of directories)
// matched against the whole path relative to the scope root, after the
// path rule of the package documentation: "../x" is an escape before any
// rule runs, and "/ws/a/.env", "a/./.env" and "a//.env" are all "a/.env".
// A pattern matches the whole path, so "*.pem" matches only at the top:
// write "**/*.pem" for any depth. The scope root itself is matched as the
// empty path (`**` and `*` match it). A leading "/" or "./" on a pattern is
// dropped.
//
// Exec patterns match each simple command of the command line: the line is
// split at unquoted `;`, `&`, `|`, `&&`, `||`, newlines, parentheses and
// command substitutions (`$(...)` and backquotes, also inside double
// quotes), heredoc bodies are dropped, quotes are removed and leading
// variable assignments and shell keywords (if, then, do, !, ...) are
// skipped; what remains is matched as its words joined by single spaces.
// The strictest answer over the pieces wins: `go test ./... && rm -rf x`
// is not allowed by a rule "go test *" alone. A pattern is a glob in which
// `*` matches any run of characters (spaces and slashes included) and `?`
// one character, anchored at both ends; a pattern starting with "re:" is an
// RE2 regular expression, unanchored unless it says otherwise.
//
// Network patterns are the entries of a Network allow-list ("github.com",
// "*.pypi.org", "*", "registry.local:8443", "10.0.0.0/8"), matched
// against the host and port a command asks the proxy for. They decide
// where the backend runs such a proxy for each command: a LocalBackend
// whose Network is an allow-list (which bounds what any scope may allow),
// and the daemon's own scopes. An Ask sends the approver a Request with
// Host set (and the command line); "always" answers are remembered for
// that host and port, and at most 8 questions about hosts wait for an
// answer at once per scope (more are refused without asking). Where
// commands reach no network at all (NetworkNone, a container without
// one, MemoryBackend) network rules are kept trivially. Anywhere else (the
// host's network, software isolation, a container's network or
// allow-list, which every command of the container shares, a remote
// daemon) nothing could apply them, so a scope whose network rules can
// refuse anything is itself refused with INVALID_CONFIGURATION naming
// Permissions.Network, unless it denies every command.
//
// A command is also denied when one of its words, taken as a path
// (relative to the command's working directory, "~" meaning it too), hits
// a Deny rule of a file access: `cat .env` under DefaultPermissions.
// Catch-all rules ("**", "*") are left out of this, since every word would
// hit them; words with variables or wildcards are skipped. Like
// the dangerous-command check, this is a speed bump for mistakes, not a
// wall: a shell finds other spellings (`cat .e*`, `sh -c "$X"`) and
// isolation (bubblewrap, Docker) is what contains a command. Prefer allow
// lists for exec (a Default of Ask or Deny with Allow rules for the
// commands you expect): splitting makes those sound, where deny lists are
// only a net.
//
// # Inside commands
//
// On a LocalBackend with bwrap isolation the file rules reach into the
// command's sandbox: when it starts, what the read rules do not allow
// (Deny, or Ask: a command cannot stop to ask) is shown empty, so `cat
// .e?v`, `grep -r`, `tar` and hard links get nothing, and what the write or
// delete rules do not allow is shown read-only (a scope whose writes all
// Ask, as StrictPermissions', is read-only to its commands). Files the
// command creates are not covered, and the scope's directory is walked at
// each start when such rules exist. Under isolation none or software, and
// on other backends, a command can read and write whatever the file API
// denies; the scope logs a warning saying so the first time.
//
// # Symbolic links
//
// When the backend can resolve symbolic links (LinkResolver: LocalBackend,
// ContainerBackend (Docker, Kubernetes) and RemoteBackend, and composites
// and scopes over them), a path is checked both as spelled and as the real
// path it leads to, so a link "alias -> .env" inside the workspace does not
// dodge a rule for ".env". This costs one call per check of an access whose
// policy has rules: an openat2 on Linux, a round trip to the container for
// Docker and Kubernetes or to the daemon for Remote. The real path is
// resolved in the scope's jail (see ScopedBackend), so a link that leads out
// of the scope is refused (PATH_ESCAPE_ATTEMPT) whatever the policy.
// On a LocalBackend (Linux), Read and Write (and so Edit, ReadLines) then
// act on exactly the real path that was judged, following no link: a link
// that a command running at the same time swaps in meanwhile makes them
// check again instead of leading to a denied file. The other operations,
// and other backends, check just before the operation, and such a command
// can still win that race (Stat, ReadDir and Touch of what a swapped link
// points to).
//
// # Listings and searches
//
// ReadDir, ReadDirInfo, LsInfo and Glob silently leave out entries whose
// list or read access is denied (by a rule, a default, or a remembered
// "deny always"); entries whose answer would be Ask are shown, since only
// their names are revealed and opening them will ask. Grep leaves out
// files whose list, read or search access is anything but allowed (Ask
// included, unless an "allow always" was remembered): their names and
// content would be in the result. Nothing in a listing or a search ever prompts. Entries
// are judged by their path in the listing, not by where a link among them
// leads; reading through such a link is checked when it happens.
//
// # Nesting
//
// A scope of a scope keeps its parent's permissions and adds its own: each
// layer's policy is checked with the path relative to that layer's root,
// any Deny wins, and an Ask (with no Deny) asks that layer's approver. A
// child can therefore only tighten. A child scope without Permissions
// shares its parent's layers, remembered answers included.
//
// # Denials
//
// A refused operation fails before it reaches the backend with an *Error
// of code PERMISSION_DENIED naming the operation, the path or command, and
// (through its *Denial cause) the rule and its reason. A denied Read of a
// missing file is a denial, not a not-found: rules do not reveal whether a
// file exists. Every notable decision (a denial, an ask and its answer) is
// recorded by the scope's OperationsLogger whatever its mode.
//
// Permissions restrict what goes through the scope. Code holding the
// *ScopedBackend can still reach the backend below (Unwrap); give an agent
// tools built on the scope, not the backend.
type Permissions struct {
	Read   Policy `json:"read,omitzero"`   // Read, Stat, Exists
	List   Policy `json:"list,omitzero"`   // ReadDir, ReadDirInfo, LsInfo, Glob
	Search Policy `json:"search,omitzero"` // Grep
	Write  Policy `json:"write,omitzero"`  // Write, Mkdir, Touch, Edit, the target of Rename
	Delete Policy `json:"delete,omitzero"` // Remove, the source of Rename
	Exec   Policy `json:"exec,omitzero"`   // Exec (and background processes)
	// Network decides the connections a command asks the backend's
	// filtering proxy for (see Network).
	Network Policy `json:"network,omitzero"`

	// Approver answers Ask decisions. Nil inherits the approver of the
	// nearest enclosing scope that has one; with none at all, AskFallback
	// says what an Ask does.
	Approver Approver `json:"-"`
	// AskFallback is what an Ask does when there is no approver: FallbackDeny
	// (the zero value) denies with PERMISSION_DENIED, FallbackError fails
	// with APPROVAL_REQUIRED so the caller can tell "needs a human" apart
	// from "not allowed".
	AskFallback AskFallback `json:"askFallback,omitempty"`
}

// Access is a kind of access an operation needs; see Permissions.
type Access string

// The accesses, named as in JSON.
const (
	AccessRead   Access = "read"
	AccessList   Access = "list"
	AccessSearch Access = "search"
	AccessWrite  Access = "write"
	AccessDelete Access = "delete"
	AccessExec   Access = "exec"
	// AccessNetwork is a command's connection to a host, through the
	// filtering proxy of an allow-list Network.
	AccessNetwork Access = "network"
)

// allAccesses is every Access, in the order of the Permissions fields and
// of Access.index.
var allAccesses = [numAccesses]Access{AccessRead, AccessList, AccessSearch, AccessWrite, AccessDelete, AccessExec, AccessNetwork}

// Accesses returns every Access, in the order of the Permissions fields.
func Accesses() []Access {
	out := allAccesses
	return out[:]
}

// index returns the position of a in Accesses, or -1.
func (a Access) index() int {
	switch a {
	case AccessRead:
		return 0
	case AccessList:
		return 1
	case AccessSearch:
		return 2
	case AccessWrite:
		return 3
	case AccessDelete:
		return 4
	case AccessExec:
		return 5
	case AccessNetwork:
		return 6
	}
	return -1
}

const numAccesses = 7

// Action is what a rule or a default decides.
type Action string

// The actions. In a Policy's Default the empty Action means Allow; a Rule
// must name one.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
	Ask   Action = "ask"
)

// rank orders actions by strictness: allow < ask < deny.
func (a Action) rank() int {
	switch a {
	case Deny:
		return 2
	case Ask:
		return 1
	}
	return 0
}

func (a Action) valid(empty bool) bool {
	return a == Allow || a == Deny || a == Ask || (empty && a == "")
}

// AskFallback is what an Ask does when no approver can answer it.
type AskFallback string

// The fallbacks.
const (
	// FallbackDeny (the zero value) treats an unanswerable Ask as Deny.
	FallbackDeny AskFallback = "deny"
	// FallbackError fails an unanswerable Ask with APPROVAL_REQUIRED.
	FallbackError AskFallback = "error"
)

// Rule is one line of a Policy.
type Rule struct {
	// Pattern selects paths (a doublestar glob) or, for exec, commands (a
	// glob where `*` matches anything, or "re:" and an RE2 expression).
	Pattern string `json:"pattern"`
	// Action is what happens when Pattern matches first.
	Action Action `json:"action"`
	// Reason says why, in words for the model and the human: it is part of
	// the denial's message and of the approval request.
	Reason string `json:"reason,omitempty"`
}

// Policy is the rules of one access.
type Policy struct {
	// Default applies when no rule matches; empty means Allow.
	Default Action `json:"default,omitempty"`
	// Rules are tried in order; the first that matches decides.
	Rules []Rule `json:"rules,omitempty"`
}

// DeniesAll reports whether the policy denies every call: a Default of
// Deny and no rule that could allow or ask.
func (p *Policy) DeniesAll() bool {
	if p.Default != Deny {
		return false
	}
	for _, r := range p.Rules {
		if r.Action != Deny {
			return false
		}
	}
	return true
}

// Policy returns a pointer to the policy of access a, for code that edits
// policies by access; nil for an unknown access.
func (p *Permissions) Policy(a Access) *Policy {
	switch a {
	case AccessRead:
		return &p.Read
	case AccessList:
		return &p.List
	case AccessSearch:
		return &p.Search
	case AccessWrite:
		return &p.Write
	case AccessDelete:
		return &p.Delete
	case AccessExec:
		return &p.Exec
	case AccessNetwork:
		return &p.Network
	}
	return nil
}

// Denies reports whether these permissions deny every operation that needs
// access a, whatever its path or command: a tool that needs only a is no
// use to an agent under them (the MCP server leaves such tools out).
func (p *Permissions) Denies(a Access) bool {
	pol := p.Policy(a)
	return pol != nil && pol.DeniesAll()
}

// Clone returns a deep copy (the Approver is shared), so a preset can be
// edited without touching the original.
func (p *Permissions) Clone() *Permissions {
	if p == nil {
		return nil
	}
	c := *p
	for _, a := range allAccesses {
		pol := c.Policy(a)
		pol.Rules = slices.Clone(pol.Rules)
	}
	return &c
}

// Validate checks the permissions: every action, pattern and the fallback.
// The error (INVALID_CONFIGURATION) names the field as JSON spells it, such
// as `write.rules[2].pattern`. Scope runs it too.
func (p *Permissions) Validate() error {
	_, err := compilePermissions(p)
	return err
}

// PermissionsFromJSON reads permissions from JSON, the same fields as the
// Permissions struct (read, list, search, write, delete, exec, network,
// each with default and rules; askFallback). Unknown fields, bad actions and bad
// patterns are INVALID_CONFIGURATION errors naming the field. The Approver
// is left nil.
//
//	{"write": {"default": "deny", "rules": [{"pattern": "src/**", "action": "allow"}]},
//	 "exec":  {"default": "ask",  "rules": [{"pattern": "go test *", "action": "allow"}]}}
func PermissionsFromJSON(data []byte) (*Permissions, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Permissions
	if err := dec.Decode(&p); err != nil {
		return nil, errConfig("permissions: %s", jsonReason(err))
	}
	if dec.More() {
		return nil, errConfig("permissions: unexpected data after the JSON object")
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		// Decoding null leaves the zero Permissions: a policy nobody wrote.
		return nil, errConfig("permissions: got JSON null, want a JSON object such as {\"exec\": {\"default\": \"deny\"}}")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// jsonReason phrases a decoding error with the field it concerns.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the top level"
		}
		return fmt.Sprintf("%s: got a JSON %s, want %s", field, te.Value, jsonKind(te.Type.String()))
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	case err == io.EOF:
		return "empty input: want a JSON object such as {\"exec\": {\"default\": \"deny\"}}"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.Contains(goType, "Action"), strings.Contains(goType, "AskFallback"), goType == "string":
		return "a string"
	}
	return "an object"
}

// fieldName is the JSON name of the policy of access a.
func fieldName(a Access) string { return string(a) }
