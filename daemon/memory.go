package daemon

import (
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// The daemon gives memory back when its clients leave. Go's runtime
// returns freed heap to the OS only after a garbage collection has found
// it free, and collects only when the heap grows: a daemon that served a
// thousand busy clients and then went idle would keep their memory until
// the next forced collection, minutes later, and then return it slowly.
// So a trimmer checks every trimInterval whether clients have left since
// it last looked and the heap holds more than trimSlack the OS could
// have back; if so it collects and returns what is free at once
// (debug.FreeOSMemory). At most one full collection per interval, only
// after departures: an idle daemon and a steady one are never disturbed.
const (
	trimInterval = 5 * time.Second
	trimSlack    = 64 << 20
)

// trimmer returns the daemon's free memory to the OS after clients leave.
type trimmer struct {
	left atomic.Int64 // connections ended since the last check
	stop chan struct{}
	done chan struct{}
}

func startTrimmer() *trimmer {
	t := &trimmer{stop: make(chan struct{}), done: make(chan struct{})}
	go t.run()
	return t
}

// clientLeft records the end of a client's connection.
func (t *trimmer) clientLeft() { t.left.Add(1) }

func (t *trimmer) close() {
	close(t.stop)
	<-t.done
}

func (t *trimmer) run() {
	defer close(t.done)
	tick := time.NewTicker(trimInterval)
	defer tick.Stop()
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		if t.left.Swap(0) == 0 {
			continue
		}
		metrics.Read(samples)
		var held uint64
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				held += s.Value.Uint64()
			}
		}
		if held > trimSlack {
			debug.FreeOSMemory()
		}
	}
}
