package agentbackend

import "github.com/agentbackend/agentbackend/internal/pathjail"

// resolve applies the path rule (internal/pathjail) to p against root and
// returns p's clean path relative to root, or a PATH_ESCAPE_ATTEMPT error
// naming p and op. Every backend and scope resolves through here.
func resolve(root, op, p string) (string, error) {
	rel, ok := pathjail.Resolve(root, p)
	if !ok {
		return "", errPathEscape(op, p)
	}
	return rel, nil
}

// cleanRoot returns the canonical form of a workspace root: absolute,
// slash-separated, clean.
func cleanRoot(root string) string { return pathjail.Clean(root) }

// joinRoot returns the absolute path of a resolved relative path.
func joinRoot(root, rel string) string { return pathjail.Join(root, rel) }
