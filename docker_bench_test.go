package agentbackend_test

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

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
