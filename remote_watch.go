package agentbackend

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"

	"github.com/agentbackend/agentbackend/internal/searchwire"
	"github.com/agentbackend/agentbackend/internal/sshext"
)

var _ Watcher = (*RemoteBackend)(nil)

// Watch reports the changes to the directory tree at p (see the function
// Watch). This module's daemon watches it there, with inotify beneath the
// workspace (beneath the scope's directory, for a jailed scope), and
// streams the events over an SSH session of their own; a daemon without
// that subsystem (the reference) is scanned through SFTP every
// WatchOptions.PollInterval instead. A lost connection ends the watch
// with an overflow event, then the channel closes.
func (b *RemoteBackend) Watch(ctx context.Context, p string, opts *WatchOptions) (<-chan WatchEvent, error) {
	if err := b.checkOpen("watch"); err != nil {
		return nil, err
	}
	full, _, err := b.abs("watch", p)
	if err != nil {
		return nil, err
	}
	c, err := b.connection(ctx, "watch")
	if err != nil {
		return nil, err
	}
	if c.noWatch.Load() {
		return pollWatch(ctx, b, p, opts)
	}
	o := opts.withDefaults()
	sess, err := c.client.NewSession()
	if err != nil {
		return nil, b.fail(c, CodeReadFailed, "watch", p, err)
	}
	fail := func(err error) (<-chan WatchEvent, error) {
		sess.Close()
		return nil, err
	}
	if err := b.jailSession(c, sess.SendRequest); err != nil {
		return fail(b.fail(c, CodeReadFailed, "watch", p, err))
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return fail(b.fail(c, CodeReadFailed, "watch", p, err))
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return fail(b.fail(c, CodeReadFailed, "watch", p, err))
	}
	if err := sess.RequestSubsystem(sshext.WatchSubsystem); err != nil {
		sess.Close()
		if c.dead() {
			return nil, b.fail(c, CodeReadFailed, "watch", p, err)
		}
		c.noWatch.Store(true)
		return pollWatch(ctx, b, p, opts)
	}
	wctx, cancel := b.bound(ctx)
	stop := context.AfterFunc(wctx, func() { sess.Close() })
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 0, 4096), 1<<20)
	var first searchwire.WatchEvent
	err = json.NewEncoder(stdin).Encode(&searchwire.WatchRequest{Dir: full, Queue: o.Queue})
	if err == nil && !lines.Scan() {
		err = lines.Err()
		if err == nil {
			err = errors.New("the daemon ended the watch")
		}
	}
	if err == nil {
		err = json.Unmarshal(lines.Bytes(), &first)
	}
	if err == nil && first.Error != nil {
		err = remoteWireError("watch", p, first.Error)
	}
	if err != nil {
		stop()
		cancel()
		if ae := (*Error)(nil); !errors.As(err, &ae) {
			err = b.fail(c, CodeReadFailed, "watch", p, err)
		}
		return fail(err)
	}
	q := newWatchQueue(o.Queue)
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer sess.Close()
		for lines.Scan() {
			var ev searchwire.WatchEvent
			if json.Unmarshal(lines.Bytes(), &ev) != nil || ev.Op == "" {
				continue
			}
			if WatchOp(ev.Op) == WatchOverflow {
				q.overflow()
				continue
			}
			// The daemon's paths are relative to the session's directory,
			// which is this backend's root.
			q.push(WatchEvent{Op: WatchOp(ev.Op), Path: ev.Path})
		}
		if wctx.Err() == nil {
			q.overflow() // the connection or the daemon ended the watch
		}
	}()
	go func() {
		q.deliver(wctx, read)
		stop()
		cancel()
	}()
	return q.out, nil
}

// remoteWireError converts a daemon's error answer.
func remoteWireError(op, p string, e *searchwire.Error) error {
	if e.Code == string(CodePathEscape) {
		return errPathEscape(op, p)
	}
	out := &Error{Code: Code(e.Code), Op: op, Path: p, Message: e.Message}
	if e.NotExist {
		out.Err = fs.ErrNotExist
	}
	return out
}
