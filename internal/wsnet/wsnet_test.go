package wsnet_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbackend/agentbackend/internal/wsnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns the client and server ends of a WebSocket on 127.0.0.1.
func pair(t *testing.T) (client, server *wsnet.Conn) {
	t.Helper()
	accepted := make(chan *wsnet.Conn, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := wsnet.Accept(w, r)
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		<-release // the handler's return would end the hijacked connection's life
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	client, err := wsnet.Dial(context.Background(), "ws"+srv.URL[len("http"):], nil, nil)
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() {
		read := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, server); close(read) }() // answers the close
		client.Close()
		server.Close()
		<-read
	})
	return client, server
}

// Writes made back to back (as SSH makes them, packet by packet) arrive
// whole and in order, whichever way, however they were merged.
func TestStreamIntactBothWays(t *testing.T) {
	client, server := pair(t)
	for _, dir := range []struct {
		name string
		w, r net.Conn
	}{{"client to server", client, server}, {"server to client", server, client}} {
		t.Run(dir.name, func(t *testing.T) {
			var want bytes.Buffer
			for i := range 300 {
				want.Write(bytes.Repeat([]byte{byte(i)}, 1+i*97%(40<<10)))
			}
			errc := make(chan error, 1)
			go func() {
				b := want.Bytes()
				for i := 0; len(b) > 0; i++ {
					n := min(len(b), 1+i*97%(40<<10))
					if _, err := dir.w.Write(b[:n]); err != nil {
						errc <- err
						return
					}
					b = b[n:]
				}
				errc <- nil
			}()
			got := make([]byte, want.Len())
			_, err := io.ReadFull(dir.r, got)
			require.NoError(t, err)
			require.NoError(t, <-errc)
			assert.True(t, bytes.Equal(want.Bytes(), got), "the stream arrived changed")
		})
	}
}

// A lone small write is sent without waiting for more: the peer reads it
// while the writer writes nothing else (a request/response protocol would
// otherwise stall).
func TestLoneWriteIsSent(t *testing.T) {
	client, server := pair(t)
	for range 50 {
		_, err := client.Write([]byte("ping"))
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(server, buf)
		require.NoError(t, err)
		_, err = server.Write(buf)
		require.NoError(t, err)
		_, err = io.ReadFull(client, buf)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(buf))
	}
}

// What was written before Close reaches the peer before the close, and a
// Write after Close fails.
func TestCloseSendsWhatWasWritten(t *testing.T) {
	client, server := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, more than one message
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	_, err := client.Write(data)
	require.NoError(t, err)
	require.NoError(t, client.Close())
	assert.True(t, bytes.Equal(data, <-got), "data written before Close was lost")
	_, err = client.Write([]byte("x"))
	assert.Error(t, err)
	assert.True(t, wsnet.IsClosed(err))
}

// When the peer has gone, writes fail rather than queueing without end.
func TestWriteFailsOncePeerGone(t *testing.T) {
	client, server := pair(t)
	read := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, client); close(read) }() // answers the close
	require.NoError(t, server.Close())
	<-read
	chunk := make([]byte, 32<<10)
	var err error
	for range 10000 { // 320 MiB: far more than any buffer on the way
		if _, err = client.Write(chunk); err != nil {
			break
		}
	}
	assert.Error(t, err)
}
