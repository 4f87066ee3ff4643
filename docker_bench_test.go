package agentbackend_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// benchDocker returns a backend on a fresh container for a benchmark.
func benchDocker(b *testing.B) *ab.DockerBackend {
	b.Helper()
	return newDockerBackend(b, ab.DockerConfig{})
}

// BenchmarkDockerExec compares an Exec of `true` with `docker exec <id> true`
// from the CLI on the same container (target: the SDK is faster).
func BenchmarkDockerExec(b *testing.B) {
	d := benchDocker(b)
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		docker, err := exec.LookPath("docker")
		if err != nil {
			b.Skip("the docker CLI is not installed")
		}
		for b.Loop() {
			if err := exec.Command(docker, "exec", d.ContainerID(), "true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDockerStart measures NewDocker (create and start a container) up
// to the end of its first Exec, and Close.
func BenchmarkDockerStart(b *testing.B) {
	cli := needDocker(b)
	ctx := context.Background()
	for b.Loop() {
		d, err := ab.NewDocker(ctx, ab.DockerConfig{Image: dockerTestImage, Client: cli,
			Labels: map[string]string{"io.agentbackend.test": "1"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Exec(ctx, "true", nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkSessionFirstExec measures a new session of a SessionManager up
// to the end of its first Exec: raw with a container created and started
// for it (cold), sdk with one taken from the warm pool (WarmContainers: 1;
// the pool is refilled between iterations, off the clock). Sessions are
// reaped off the clock too.
func BenchmarkSessionFirstExec(b *testing.B) {
	cli := needDocker(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		warm int
	}{{"raw", 0}, {"sdk", 1}} {
		b.Run(c.name, func(b *testing.B) {
			m, err := ab.NewSessionManager(ab.SessionConfig{Docker: ab.DockerConfig{Image: dockerTestImage, Client: cli},
				WarmContainers: c.warm, IdleTimeout: time.Nanosecond})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Shutdown(context.Background())
			i := 0
			for b.Loop() {
				b.StopTimer()
				m.CleanupIdle()
				for deadline := time.Now().Add(time.Minute); m.Stats().Warm < c.warm; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatal("the warm pool was not refilled")
					}
				}
				i++
				b.StartTimer()
				s, err := m.GetOrCreate(ctx, fmt.Sprintf("s%d", i))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Exec(ctx, "true", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var dockerBenchSizes = []struct {
	name string
	size int
}{{"4KiB", 4 << 10}, {"16MiB", 16 << 20}}

func BenchmarkDockerWrite(b *testing.B) {
	d := benchDocker(b)
	ctx := context.Background()
	for _, s := range dockerBenchSizes {
		data := bytes.Repeat([]byte{0xa5}, s.size)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(s.size))
			for b.Loop() {
				if err := d.Write(ctx, "bench.bin", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDockerRead(b *testing.B) {
	d := benchDocker(b)
	ctx := context.Background()
	for _, s := range dockerBenchSizes {
		if err := d.Write(ctx, s.name, bytes.Repeat([]byte{0x5a}, s.size)); err != nil {
			b.Fatal(err)
		}
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(s.size))
			for b.Loop() {
				data, err := d.Read(ctx, s.name)
				if err != nil || len(data) != s.size {
					b.Fatal(len(data), err)
				}
			}
		})
	}
}
