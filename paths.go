package agentbackend

import (
	"strings"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// Limits of a path, Linux's (NAME_MAX and PATH_MAX less the NUL), enforced
// by resolve so that every backend refuses the same names the same way
// instead of each failing where its own system does (or, for Memory,
// not at all).
const (
	maxNameLen = 255
	maxPathLen = 4095
)

// resolve applies the path rule (internal/pathjail) to p against root and
// returns p's clean path relative to root, or a PATH_ESCAPE_ATTEMPT error
// naming p and op. Every backend and scope resolves through here, so the
// refusals of malformed paths are here too: a NUL byte, an element over
// 255 bytes or a path over 4095 are INVALID_ARGUMENT, and so is a path
// ending in "/" (a directory) given to write or touch, which make a file.
func resolve(root, op, p string) (string, error) {
	if err := checkPath(op, p); err != nil {
		return "", err
	}
	rel, ok := pathjail.Resolve(root, p)
	if !ok {
		return "", errPathEscape(op, p)
	}
	return rel, nil
}

// checkPath refuses the paths no backend can hold.
func checkPath(op, p string) error {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return errArgument(op, p, "path contains a NUL byte")
	case len(p) > maxPathLen:
		return errArgument(op, p, "path is longer than %d bytes", maxPathLen)
	case strings.HasSuffix(p, "/") && (op == "write" || op == "touch"):
		return errArgument(op, p, "path ends in \"/\", which names a directory, not a file to %s", op)
	}
	for name := range strings.SplitSeq(p, "/") {
		if len(name) > maxNameLen {
			return errArgument(op, p, "path has a name longer than %d bytes", maxNameLen)
		}
	}
	return nil
}

// cleanRoot returns the canonical form of a workspace root: absolute,
// slash-separated, clean.
func cleanRoot(root string) string { return pathjail.Clean(root) }

// joinRoot returns the absolute path of a resolved relative path.
func joinRoot(root, rel string) string { return pathjail.Join(root, rel) }
