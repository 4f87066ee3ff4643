// Package sessionid is the rule for session IDs, shared by the session
// managers of the root package (Docker) and of package kubernetes: an ID
// names a directory and a label, so no separators, no "..", nothing a
// shell or path would read specially.
package sessionid

import "regexp"

var re = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Valid reports whether id may name a session: 1 to 128 letters, digits,
// '.', '_' and '-', starting with a letter or digit, and not "..".
func Valid(id string) bool {
	return re.MatchString(id) && id != ".." && id != "."
}
