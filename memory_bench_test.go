package agentbackend

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
)

// Run with: go test -run '^$' -bench BenchmarkMemory -benchmem
//
// Targets (DESIGN.md): Read and Write under 1 µs; ReadDir of one small
// directory flat in the size of the store (O(log n + k)); at most 250 bytes
// of heap per key beyond the key and value bytes at 1M keys.

// benchValue is a small file's contents.
var benchValue = []byte("0123456789abcdef0123456789abcdef")

// fillFlat writes n files "dirDDDD/fileFFF.txt", 100 to a directory, and
// returns their paths.
func fillFlat(tb testing.TB, b *MemoryBackend, n int) []string {
	tb.Helper()
	ctx := context.Background()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("dir%04d/file%03d.txt", i/100, i%100)
		if err := b.Write(ctx, paths[i], benchValue); err != nil {
			tb.Fatal(err)
		}
	}
	return paths
}

func newBenchMem(tb testing.TB) *MemoryBackend {
	b, err := NewMemory(MemoryConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkMemoryRead reads random small files of a 100k-key store.
func BenchmarkMemoryRead(b *testing.B) {
	m := newBenchMem(b)
	defer m.Close()
	paths := fillFlat(b, m, 100_000)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	ctx := context.Background()
	b.SetBytes(int64(len(benchValue)))
	i := 0
	for b.Loop() {
		if _, err := m.Read(ctx, paths[i%len(paths)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMemoryReadParallel is BenchmarkMemoryRead from every CPU at
// once: readers share the lock.
func BenchmarkMemoryReadParallel(b *testing.B) {
	m := newBenchMem(b)
	defer m.Close()
	paths := fillFlat(b, m, 100_000)
	ctx := context.Background()
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(paths))
		for pb.Next() {
			if _, err := m.Read(ctx, paths[i%len(paths)]); err != nil {
				b.Error(err)
				return
			}
			i += 7919
		}
	})
}

// BenchmarkMemoryWrite overwrites random small files of a 100k-key store.
func BenchmarkMemoryWrite(b *testing.B) {
	m := newBenchMem(b)
	defer m.Close()
	paths := fillFlat(b, m, 100_000)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	ctx := context.Background()
	b.SetBytes(int64(len(benchValue)))
	i := 0
	for b.Loop() {
		if err := m.Write(ctx, paths[i%len(paths)], benchValue); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMemoryWriteNew creates small files in existing directories of a
// store that starts with 100k keys.
func BenchmarkMemoryWriteNew(b *testing.B) {
	m := newBenchMem(b)
	defer m.Close()
	fillFlat(b, m, 100_000)
	ctx := context.Background()
	names := make([]string, 1<<20)
	for i := range names {
		names[i] = fmt.Sprintf("dir%04d/new%07d", i%1000, i)
	}
	b.SetBytes(int64(len(benchValue)))
	i := 0
	for b.Loop() {
		if i == len(names) { // start over in an emptied set of names
			b.StopTimer()
			for _, p := range names {
				_ = m.Remove(ctx, p, RemoveOptions{})
			}
			i = 0
			b.StartTimer()
		}
		if err := m.Write(ctx, names[i], benchValue); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMemoryReadDir lists one directory of 10 subdirectories among
// 10k, 100k and 1M keys. The store is 100 top directories of 10 children
// each, with the keys spread evenly below those, so each listed child
// hides n/1000 keys that the listing must skip, not scan: ns/op stays flat
// as the store grows.
func BenchmarkMemoryReadDir(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run("keys="+shortCount(n), func(b *testing.B) {
			m := newBenchMem(b)
			defer m.Close()
			ctx := context.Background()
			per := n / 10_000 // third-level directories per child
			for t := range 100 {
				for c := range 10 {
					for s := range per {
						for f := range 10 {
							p := fmt.Sprintf("t%02d/c%d/s%03d/f%d", t, c, s, f)
							if err := m.Write(ctx, p, benchValue); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
			}
			if got := len(m.ListKeys("")); got != n {
				b.Fatalf("store has %d keys, want %d", got, n)
			}
			for b.Loop() {
				names, err := m.ReadDir(ctx, "t42")
				if err != nil || len(names) != 10 {
					b.Fatalf("ReadDir = %d names, %v", len(names), err)
				}
			}
		})
	}
}

func shortCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// BenchmarkMemoryHeapPerKey builds a 1M-key store (10,000 directories of
// 100 small files, written in random order) and reports the heap it holds
// beyond the bytes of the keys and values themselves, per key, as
// heapB/key. Directory entries count as overhead. ns/op is the time to
// build the store.
func BenchmarkMemoryHeapPerKey(b *testing.B) {
	const n = 1_000_000
	order := rand.New(rand.NewPCG(3, 4)).Perm(n)
	ctx := context.Background()
	var perKey float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		m := newBenchMem(b)
		var payload uint64
		buf := make([]byte, 0, 32)
		for _, i := range order {
			buf = strconv.AppendInt(append(buf[:0], "dir"...), int64(10000+i/100), 10)
			buf = strconv.AppendInt(append(buf, "/file"...), int64(1000+i%100), 10)
			key := string(append(buf, ".txt"...)) // the store keeps this string
			payload += uint64(len(key) + len(benchValue))
			if err := m.Write(ctx, key, benchValue); err != nil {
				b.Fatal(err)
			}
		}

		runtime.GC()
		runtime.ReadMemStats(&after)
		perKey = (float64(after.HeapAlloc) - float64(before.HeapAlloc) - float64(payload)) / n
		runtime.KeepAlive(m)
		m.Close()
	}
	b.ReportMetric(perKey, "heapB/key")
}
