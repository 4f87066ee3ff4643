package agentmcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DefaultMaxMessageBytes bounds one message ServeStdio reads (a
// write_file of a large file is one message).
const DefaultMaxMessageBytes = 1 << 30

// ServeStdio serves b's tools (those of NewServer(b, opts)) to an MCP host
// over a byte stream: in carries the host's messages, one JSON value each
// (a line), and out the answers. It returns nil when in ends, after
// answering every call read until then (a host may write its requests and
// close its end at once), or when ctx is cancelled (closing in, when it is
// an io.Closer, to stop reading it).
//
// The SDK's server runs the session, with a shortcut for the two requests
// an agent repeats: the go-sdk decodes each message several times over,
// with a 32 KiB buffer each time, which costs more than most tools. A
// tools/call of a served tool is answered here, without the SDK, once the
// SDK has answered one with the same _meta (the same protocol version and
// client, in the protocol without a handshake; none, after one): what the
// SDK adds to a result for that _meta (its serverInfo, say) is learnt from
// its answer and added to this one. A tools/list is answered with the
// SDK's own answer to the same request, kept until the SDK announces a
// change of the tools. Anything else (other methods, progress tokens,
// batches, a first request of its kind) goes to the SDK as it came, so the
// answers are the SDK's, at a fraction of the cost.
func ServeStdio(ctx context.Context, b ab.FileBackend, opts *Options, in io.Reader, out io.Writer) error {
	t := newToolset(b, opts)
	server := newServer(opts, t.filter, func(context.Context) *toolset { return t })
	s := &stdio{t: t, out: &lineWriter{w: out}, specs: map[string]*spec{}, calls: map[string]context.CancelFunc{},
		learning: map[string]learn{}, lists: map[string]json.RawMessage{}, extras: map[string][]byte{}, workers: newWorkers()}
	defer s.workers.stop()
	for _, sp := range allSpecs {
		if t.filter.serves(sp) {
			s.specs[sp.name] = sp
		}
	}
	if stdioStarted != nil {
		stdioStarted(s)
	}
	limit := int64(DefaultMaxMessageBytes)
	sdkIn, feed := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- server.Run(ctx, &drainTransport{mcp.IOTransport{Reader: sdkIn, Writer: sdkWriter{s}, MaxLineLength: int(limit)}})
	}()
	read := make(chan error, 1)
	go s.read(ctx, newMessages(in, limit), feed, func(err error) { read <- err })
	var readErr error
	select {
	case readErr = <-read:
	case <-ctx.Done():
		// Unblock the read, as the SDK's transport does: close the input
		// when it can be closed (else the read ends with the input).
		if c, ok := in.(io.Closer); ok {
			c.Close()
			<-read
		}
		readErr = ctx.Err()
	}
	s.running.Wait() // the shortcut's calls answered
	feed.CloseWithError(readErr)
	err := <-served
	sdkIn.Close()
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// maxLearnt bounds what the shortcut keeps (answers to tools/list, extras
// of tools/call results), by request shape: a host sends a handful.
const maxLearnt = 64

// stdio is one ServeStdio session.
type stdio struct {
	t     *toolset
	specs map[string]*spec // the tools served, by name
	out   *lineWriter

	mu       sync.Mutex
	calls    map[string]context.CancelFunc // the shortcut's calls in flight, by raw ID
	learning map[string]learn              // requests sent to the SDK whose answer to learn from, by raw ID
	lists    map[string]json.RawMessage    // the SDK's tools/list results, by the request's params
	extras   map[string][]byte             // what the SDK adds to a tools/call result, by the request's _meta
	running  sync.WaitGroup
	workers  workers
	answered atomic.Int64 // calls and lists the shortcut answered (for tests)
}

// workers run the shortcut's calls on goroutines that outlive a call: a
// new goroutine's stack grows for each call (JSON, schema validation),
// which costs as much as a small tool. One that has been idle for
// workerIdle ends; stop ends them all.
type workers struct {
	work chan func()
	done chan struct{}
}

const workerIdle = 10 * time.Second

func newWorkers() workers { return workers{work: make(chan func()), done: make(chan struct{})} }

// run runs fn on an idle worker, or a new one.
func (w workers) run(fn func()) {
	select {
	case w.work <- fn:
	default:
		go w.loop(fn)
	}
}

func (w workers) loop(fn func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-w.work:
		case <-idle.C:
			return
		case <-w.done:
			return
		}
	}
}

func (w workers) stop() { close(w.done) }

// stdioStarted, when a test sets it, is given each ServeStdio session.
var stdioStarted func(*stdio)

// learn is what to learn from the SDK's answer to a request.
type learn struct {
	list bool   // a tools/list: keep the result
	key  string // the request's params (tools/list) or _meta (tools/call)
}

// envelope is what the shortcut reads of a message.
type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// callParams are the parameters of a tools/call; anything but the name,
// the arguments and _meta sends the call to the SDK.
type callParams struct {
	Name           string          `json:"name"`
	Arguments      json.RawMessage `json:"arguments"`
	Meta           json.RawMessage `json:"_meta"`
	InputResponses json.RawMessage `json:"inputResponses"`
	RequestState   json.RawMessage `json:"requestState"`
	Task           json.RawMessage `json:"task"`
}

// read reads the host's messages from dec, handing each to the shortcut
// or to the SDK (through feed), until the input ends (done(nil)) or fails
// (done(err)). One goroutine reads at a time. A call the shortcut runs is
// run by the goroutine that read it, after it has handed the reading on to
// a worker: the answer then waits for no other goroutine to wake up, which
// costs as much as a small tool on a busy machine.
func (s *stdio) read(ctx context.Context, in *messages, feed *io.PipeWriter, done func(error)) {
	for {
		raw, err := in.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			done(err)
			return
		}
		if err := ctx.Err(); err != nil {
			done(err) // ServeStdio has returned, or is returning
			return
		}
		handled, run := s.shortcut(ctx, raw)
		if run != nil {
			s.workers.run(func() { s.read(ctx, in, feed, done) })
			run()
			return
		}
		if handled {
			continue
		}
		if _, err := feed.Write(append(raw, '\n')); err != nil {
			done(err)
			return
		}
	}
}

// shortcut handles raw itself when it can and reports whether it did; a
// call it takes on is returned as run, for the caller to run.
func (s *stdio) shortcut(ctx context.Context, raw json.RawMessage) (handled bool, run func()) {
	if len(raw) == 0 || raw[0] != '{' {
		return false, nil // a batch, or not a message at all: the SDK's to judge
	}
	var m envelope
	if json.Unmarshal(raw, &m) != nil || m.JSONRPC != "2.0" {
		return false, nil
	}
	if len(m.ID) == 0 || bytes.Equal(m.ID, []byte("null")) {
		return m.Method == "notifications/cancelled" && s.cancel(m.Params), nil
	}
	switch m.Method {
	case "tools/call":
		run = s.call(ctx, m)
		return run != nil, run
	case "tools/list":
		return s.listTools(m), nil
	}
	return false, nil
}

// cancel cancels the shortcut's call a notifications/cancelled names, and
// reports whether it was one.
func (s *stdio) cancel(params json.RawMessage) bool {
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(params, &p) != nil {
		return false
	}
	s.mu.Lock()
	cancel := s.calls[string(p.RequestID)]
	s.mu.Unlock()
	if cancel == nil {
		return false // the SDK's call
	}
	cancel()
	return true
}

// call returns a function that runs a tools/call of a served tool and
// writes its answer, when the SDK has answered one with the same _meta;
// else (nil) the call goes to the SDK, which is learnt from.
func (s *stdio) call(ctx context.Context, m envelope) func() {
	var p callParams
	if json.Unmarshal(m.Params, &p) != nil || p.InputResponses != nil || p.RequestState != nil || p.Task != nil {
		return nil
	}
	sp := s.specs[p.Name]
	if sp == nil {
		return nil // the SDK says what is wrong with it
	}
	id, key := string(m.ID), string(p.Meta)
	s.mu.Lock()
	extra, known := s.extras[key]
	_, dup := s.calls[id]
	if !known || dup {
		if !dup && len(s.learning) < maxLearnt {
			s.learning[id] = learn{key: key}
		}
		s.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s.calls[id] = cancel
	s.running.Add(1)
	s.mu.Unlock()
	return func() {
		defer s.running.Done()
		r, err := s.t.call(ctx, sp, p.Arguments)
		s.mu.Lock()
		delete(s.calls, id)
		s.mu.Unlock()
		cancel()
		data, err := marshalResult(r, err)
		if err != nil {
			data = errorResponse(m.ID, err)
		} else {
			data = response(m.ID, withExtra(data, extra))
		}
		_ = s.out.writeLine(data)
		s.answered.Add(1)
	}
}

// listTools answers a tools/list with the SDK's answer to the same
// request, once it has one; else it sends it to the SDK and keeps the
// answer.
func (s *stdio) listTools(m envelope) bool {
	key := string(m.Params)
	s.mu.Lock()
	list, ok := s.lists[key]
	if !ok && len(s.learning) < maxLearnt {
		s.learning[string(m.ID)] = learn{list: true, key: key}
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	_ = s.out.writeLine(response(m.ID, list))
	s.answered.Add(1)
	return true
}

// sdkWrote looks at a message the SDK wrote: an answer to learn from is
// learnt, and a change of the tools forgets what was.
func (s *stdio) sdkWrote(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Contains(line, []byte(`"notifications/tools/list_changed"`)) {
		clear(s.lists)
		clear(s.extras)
		return
	}
	if len(s.learning) == 0 || line[0] != '{' {
		return
	}
	var r struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(line, &r) != nil {
		return
	}
	l, ok := s.learning[string(r.ID)]
	if !ok {
		return
	}
	delete(s.learning, string(r.ID))
	switch {
	case r.Result == nil: // an error: nothing to learn
	case l.list && len(s.lists) < maxLearnt:
		s.lists[l.key] = r.Result
	case !l.list && len(s.extras) < maxLearnt:
		if extra, ok := resultExtras(r.Result); ok {
			s.extras[l.key] = extra
		}
	}
}

// resultFields are the fields of a tools/call result that the tool makes;
// the SDK adds the others.
var resultFields = map[string]bool{"content": true, "structuredContent": true, "isError": true}

// resultExtras returns the members of the SDK's tools/call result that the
// tool did not make, as JSON object members ("a":1,"b":2), or nil.
func resultExtras(result json.RawMessage) ([]byte, bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(result, &fields) != nil {
		return nil, false
	}
	var out []byte
	for k, v := range fields {
		if resultFields[k] {
			continue
		}
		name, _ := json.Marshal(k)
		if out != nil {
			out = append(out, ',')
		}
		out = append(append(append(out, name...), ':'), v...)
	}
	return out, true
}

// withExtra adds the members extra to the JSON object obj.
func withExtra(obj, extra []byte) []byte {
	if len(extra) == 0 {
		return obj
	}
	out := make([]byte, 0, len(obj)+len(extra)+1)
	out = append(out, obj[:len(obj)-1]...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(out, extra...)
	return append(out, '}')
}

// marshalResult returns the JSON of the CallToolResult of a tool's outcome
// (toolResult), as the SDK's server would write it. A text, the common
// case, is encoded once and written twice (content and
// structuredContent), with no other encoding work.
func marshalResult(r *Result, err error) ([]byte, error) {
	if err == nil && r.Media != nil {
		return json.Marshal(toolResult(r, err))
	}
	var text string
	if err != nil {
		text = err.Error()
	} else {
		text = r.Text
	}
	var buf bytes.Buffer
	buf.Grow(len(text)*2 + 96)
	buf.WriteString(`{"content":[{"type":"text","text":`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the SDK writes
	if encErr := enc.Encode(text); encErr != nil {
		return nil, encErr
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	if err != nil {
		buf.WriteString(`}],"isError":true}`)
		return buf.Bytes(), nil
	}
	quoted := buf.Bytes()[len(`{"content":[{"type":"text","text":`):]
	out := make([]byte, 0, buf.Len()+len(quoted)+40)
	out = append(out, buf.Bytes()...)
	out = append(out, `}],"structuredContent":{"content":`...)
	out = append(out, quoted...)
	return append(out, `}}`...), nil
}

// response is a JSON-RPC response line for id with result.
func response(id, result json.RawMessage) []byte {
	out := make([]byte, 0, len(id)+len(result)+32)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, `,"result":`...)
	out = append(out, result...)
	return append(out, '}', '\n')
}

// errorResponse is a JSON-RPC internal-error response line for id.
func errorResponse(id json.RawMessage, err error) []byte {
	msg, _ := json.Marshal(err.Error())
	out := append([]byte(`{"jsonrpc":"2.0","id":`), id...)
	out = append(out, `,"error":{"code":-32603,"message":`...)
	out = append(out, msg...)
	return append(out, '}', '}', '\n')
}

// lineWriter writes whole messages to the host, one at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) writeLine(p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(p)
	return err
}

// sdkWriter is where the SDK's transport writes: each Write is one message
// (or batch), newline included. Closing it leaves the host's stream open:
// the shortcut may still answer.
type sdkWriter struct{ s *stdio }

func (w sdkWriter) Write(p []byte) (int, error) {
	w.s.sdkWrote(p)
	if err := w.s.out.writeLine(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w sdkWriter) Close() error { return nil }

// messages reads the host's messages, one JSON value each, failing one
// longer than its limit.
type messages struct {
	dec *json.Decoder
	lr  *limitReader
}

func newMessages(in io.Reader, limit int64) *messages {
	lr := &limitReader{r: in, limit: limit}
	return &messages{dec: json.NewDecoder(lr), lr: lr}
}

func (m *messages) next() (json.RawMessage, error) {
	var raw json.RawMessage
	err := m.dec.Decode(&raw)
	m.lr.reset()
	return raw, err
}

// limitReader fails a message longer than limit bytes (counted from the
// last reset, read-ahead included).
type limitReader struct {
	r     io.Reader
	limit int64
	n     int64
}

var errMessageTooLong = errors.New("agentmcp: message too long")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		return 0, errMessageTooLong
	}
	if int64(len(p)) > l.limit-l.n {
		p = p[:l.limit-l.n]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

func (l *limitReader) reset() { l.n = 0 }
