package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// LinkResolver is an optional interface for backends whose workspaces can
// hold symbolic links. Scopes with Permissions use it to check the path an
// operation really reaches, so that a link "alias -> .env" cannot dodge a
// rule for ".env".
//
// RealPath applies the path rule to path and follows every symbolic link
// in it, returning the clean path relative to the backend root ("." for
// the root). The part of the path that does not exist is kept as spelled.
// A link that leads out of the workspace is PATH_ESCAPE_ATTEMPT.
type LinkResolver interface {
	RealPath(ctx context.Context, path string) (string, error)
}

var (
	_ LinkResolver = (*LocalBackend)(nil)
	_ LinkResolver = (*CompositeBackend)(nil)
	_ LinkResolver = (*ScopedBackend)(nil)
)

// maxLinkHops bounds how many links one resolution follows, as the kernel
// does (ELOOP).
const maxLinkHops = 40

// RealPath follows the symbolic links in a workspace path (see
// LinkResolver). On Linux a path without links costs one openat2 call.
func (b *LocalBackend) RealPath(ctx context.Context, p string) (string, error) {
	if err := b.begin(ctx, CodeReadFailed, "realpath", p); err != nil {
		return "", err
	}
	rel, err := b.rel("realpath", p)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return rel, nil
	}
	d, err := b.open(false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rel, nil // nothing exists: the path is as spelled
		}
		return "", b.fileErr(CodeReadFailed, "realpath", p, err)
	}
	defer b.done(d)
	if d.linkFree(rel) {
		return rel, nil
	}
	real, err := d.followLinks(rel)
	if err != nil {
		return "", b.fileErr(CodeReadFailed, "realpath", p, err)
	}
	return real, nil
}

// followLinks resolves rel one element at a time through d's os.Root:
// resolved holds real directories only, so ".." in a link's target pops a
// real parent, as the kernel would.
func (d *dirHandle) followLinks(rel string) (string, error) {
	var resolved []string
	pending := strings.Split(rel, "/")
	hops := 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return "", errLinkEscapes
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		cand := strings.Join(append(resolved, name), "/")
		fi, err := d.fsys.Lstat(cand)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				// Nothing below exists: the rest is as spelled.
				return pathjail.JoinRel(cand, strings.Join(pending, "/")), nil
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, name)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", syscall.ELOOP
		}
		target, err := d.fsys.Readlink(cand)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			return "", errLinkEscapes // as os.Root: absolute links lead out
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return strings.Join(resolved, "/"), nil
}

// RealPath resolves the links of a composite path in the backend it routes
// to, when that backend is a LinkResolver.
func (c *CompositeBackend) RealPath(ctx context.Context, p string) (string, error) {
	t, rel, err := c.resolve("realpath", p)
	if err != nil {
		return "", err
	}
	lr, ok := t.b.(LinkResolver)
	if !ok {
		return rel, nil
	}
	real, err := lr.RealPath(ctx, t.inner)
	if err != nil {
		return "", withPath(err, t.inner, p)
	}
	if real == t.inner {
		return rel, nil
	}
	if t.prefix == "" {
		return real, nil
	}
	return pathjail.JoinRel(t.prefix, real), nil
}

// RealPath resolves the links of a scope path where the files are (the
// scope's jailed view, see ScopedBackend); the result is relative to the
// scope root. A link leading out of the scope is PATH_ESCAPE_ATTEMPT.
func (s *ScopedBackend) RealPath(ctx context.Context, p string) (string, error) {
	in, err := s.inner("realpath", p)
	if err != nil {
		return "", err
	}
	real := in
	if s.links != nil {
		if real, err = s.links.RealPath(ctx, in); err != nil {
			return "", withPath(err, in, p)
		}
	}
	below, ok := belowOrSame(s.at, real)
	if !ok {
		return "", errPathEscape("realpath", p)
	}
	return below, nil
}
