package daemon

import (
	"encoding/json"
	"io"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/searchwire"
)

// serveWatch runs one watch of the sshext.WatchSubsystem: it reads a request,
// watches the directory with the workspace backend's Watch (inotify,
// beneath the session's jail) and streams the events as JSON lines until
// the client closes the channel. The events are those of
// agentbackend.LocalBackend.Watch, relative to the session's directory;
// the queue is the client's, bounded here too.
func (s *session) serveWatch() {
	ctx, cancel := s.context()
	defer cancel()
	enc := json.NewEncoder(s.ch)
	fail := func(err error) {
		_ = enc.Encode(&searchwire.WatchEvent{Error: wireError(err)})
		s.exit(1)
	}
	var req searchwire.WatchRequest
	if err := json.NewDecoder(io.LimitReader(s.ch, 1<<20)).Decode(&req); err != nil {
		fail(&ab.Error{Code: ab.CodeInvalidArgument, Op: "watch", Message: "bad watch request: " + err.Error()})
		return
	}
	b, done, err := s.d.jailBackend(s.jail)
	if err != nil {
		fail(err)
		return
	}
	defer done()
	dir, err := jailPath(s.jail, "watch", req.Dir)
	if err != nil {
		fail(err)
		return
	}
	events, err := ab.Watch(ctx, b, dir, &ab.WatchOptions{Queue: req.Queue})
	if err != nil {
		fail(err)
		return
	}
	if enc.Encode(&searchwire.WatchEvent{}) != nil {
		cancel()
	}
	for ev := range events {
		if enc.Encode(&searchwire.WatchEvent{Op: string(ev.Op), Path: ev.Path}) != nil {
			cancel() // the client is gone; the channel closes once the watch has stopped
		}
	}
	s.exit(0)
}
