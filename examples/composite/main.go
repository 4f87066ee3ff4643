// Command composite routes one namespace to two backends: /tmp/ to memory
// (scratch space that vanishes) and /project/ to a local directory, then
// searches across both at once.
//
//	go run ./examples/composite
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	ab "github.com/agentbackend/agentbackend"
)

func main() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "agentbackend-composite-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	project, err := ab.NewLocal(ab.LocalConfig{RootDir: dir})
	check(err)
	scratch, err := ab.NewMemory(ab.MemoryConfig{})
	check(err)
	state, err := ab.NewMemory(ab.MemoryConfig{})
	check(err)
	// Close closes all three.
	ws, err := ab.NewComposite(state, map[string]ab.FileBackend{"/tmp/": scratch, "/project/": project})
	check(err)
	defer ws.Close()

	check(ws.Write(ctx, "/project/main.go", []byte("package main // TODO: flags\n")))
	check(ws.Write(ctx, "/tmp/plan.md", []byte("TODO: add flags to main.go\n")))
	check(ws.Write(ctx, "/memory.md", []byte("user prefers short answers\n")))

	onDisk, err := os.ReadFile(dir + "/main.go")
	check(err)
	fmt.Printf("on disk: %s", onDisk)
	names, err := ws.ReadDir(ctx, "/")
	check(err)
	fmt.Printf("ls /: %v\n", names)

	todos, err := ab.Grep(ctx, ws, ab.GrepOptions{Pattern: "TODO", Mode: ab.GrepContent})
	check(err)
	fmt.Printf("grep TODO across routes:\n%s", todos)

	// A rename across routes copies then removes: the plan moves to disk.
	check(ws.Rename(ctx, "/tmp/plan.md", "/project/PLAN.md"))
	files, err := ab.Glob(ctx, ws, "**/*.md", "/")
	check(err)
	fmt.Printf("markdown files: %v\n", files)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
