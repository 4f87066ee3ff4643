package agentbackend

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/agentbackend/agentbackend/internal/searchwire"
	"github.com/agentbackend/agentbackend/internal/sshext"
)

// errNoSearch says the daemon has no search subsystem.
var errNoSearch = errors.New("the daemon has no search subsystem")

// Grep searches file contents (see the package function Grep). Against
// this module's daemon the search runs there, next to the data, in one
// round trip, by the very code Grep runs on a LocalBackend; against a
// daemon without it (the reference), the generic search runs here over
// SFTP. Results are the same either way.
func (b *RemoteBackend) Grep(ctx context.Context, opts GrepOptions) (*GrepResult, error) {
	if err := b.checkOpen("grep"); err != nil {
		return nil, err
	}
	full, _, err := b.abs("grep", opts.Path)
	if err != nil {
		return nil, err
	}
	o := opts
	o.Path = full
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	resp, err := b.search(ctx, "grep", opts.Path, searchwire.Request{Op: searchwire.OpGrep, Grep: raw})
	if errors.Is(err, errNoSearch) {
		return grepTree(ctx, backendTree(b), opts)
	}
	if err != nil {
		return nil, err
	}
	var res GrepResult
	if err := json.Unmarshal(resp.Grep, &res); err != nil {
		return nil, connClosed("grep", opts.Path, err)
	}
	// Paths come relative to the daemon's root; make them relative to ours.
	conv := func(p string) (string, bool) { return belowOrSame(b.root, joinRoot(cleanRoot(resp.Root), p)) }
	ok := true
	for _, ps := range []*[]string{&res.Files} {
		for i, p := range *ps {
			(*ps)[i], ok = conv(p)
			if !ok {
				return grepTree(ctx, backendTree(b), opts)
			}
		}
	}
	for i := range res.Counts {
		if res.Counts[i].Path, ok = conv(res.Counts[i].Path); !ok {
			return grepTree(ctx, backendTree(b), opts)
		}
	}
	for i := range res.Lines {
		if res.Lines[i].Path, ok = conv(res.Lines[i].Path); !ok {
			return grepTree(ctx, backendTree(b), opts)
		}
	}
	return &res, nil
}

// Glob matches a pattern below dir (see the package function Glob),
// on the daemon when it can, else here over SFTP.
func (b *RemoteBackend) Glob(ctx context.Context, pattern, dir string) ([]string, error) {
	if err := b.checkOpen("glob"); err != nil {
		return nil, err
	}
	full, _, err := b.abs("glob", dir)
	if err != nil {
		return nil, err
	}
	resp, err := b.search(ctx, "glob", dir, searchwire.Request{Op: searchwire.OpGlob, Pattern: pattern, Dir: full})
	if errors.Is(err, errNoSearch) {
		return globTree(ctx, backendTree(b), pattern, dir)
	}
	if err != nil {
		return nil, err
	}
	return resp.Glob, nil
}

// search sends one request to the daemon's search subsystem and returns
// its answer; errNoSearch when the daemon has none.
func (b *RemoteBackend) search(ctx context.Context, op, p string, req searchwire.Request) (*searchwire.Response, error) {
	c, err := b.connection(ctx, op)
	if err != nil {
		return nil, err
	}
	if c.noSearch.Load() {
		return nil, errNoSearch
	}
	sess, release, err := c.newSession(ctx)
	if err != nil {
		return nil, b.fail(c, CodeReadFailed, op, p, err)
	}
	defer release()
	defer sess.Close()
	if err := b.jailSession(c, sess.SendRequest); err != nil {
		return nil, b.fail(c, CodeReadFailed, op, p, err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, b.fail(c, CodeReadFailed, op, p, err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, b.fail(c, CodeReadFailed, op, p, err)
	}
	if err := sess.RequestSubsystem(sshext.SearchSubsystem); err != nil {
		if c.dead() {
			return nil, b.fail(c, CodeReadFailed, op, p, err)
		}
		c.noSearch.Store(true)
		return nil, errNoSearch
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	var resp searchwire.Response
	err = json.NewEncoder(stdin).Encode(&req)
	if err == nil {
		err = json.NewDecoder(stdout).Decode(&resp)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Code: CodeReadFailed, Op: op, Path: p, Err: ctx.Err()}
		}
		return nil, b.fail(c, CodeReadFailed, op, p, err)
	}
	if e := resp.Error; e != nil {
		return nil, remoteWireError(op, p, e)
	}
	return &resp, nil
}

var _ LinkResolver = (*RemoteBackend)(nil)

// RealPath follows the symbolic links in a workspace path (see
// LinkResolver) on the daemon, in one round trip: against this module's
// daemon it is resolved there, beneath the workspace (beneath the scope's
// directory, for a scope), and a link that leads out is
// PATH_ESCAPE_ATTEMPT. A daemon without the search subsystem (the
// reference) cannot resolve links: the path comes back as spelled.
func (b *RemoteBackend) RealPath(ctx context.Context, p string) (string, error) {
	if err := b.checkOpen("realpath"); err != nil {
		return "", err
	}
	full, rel, err := b.abs("realpath", p)
	if err != nil || rel == "." {
		return rel, err
	}
	resp, err := b.search(ctx, "realpath", p, searchwire.Request{Op: searchwire.OpRealPath, Dir: full})
	if errors.Is(err, errNoSearch) {
		return rel, nil
	}
	if err != nil {
		return "", err
	}
	real, ok := belowOrSame(b.root, joinRoot(cleanRoot(resp.Root), resp.Path))
	if !ok {
		return "", errPathEscape("realpath", p)
	}
	return real, nil
}
