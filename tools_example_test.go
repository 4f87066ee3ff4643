package agentbackend_test

import (
	"context"
	"fmt"
	"log"

	ab "github.com/agentbackend/agentbackend"
)

// exampleProject is a Memory backend holding a small project.
func exampleProject() *ab.MemoryBackend {
	b, err := ab.NewMemory(ab.MemoryConfig{InitialData: map[string][]byte{
		"main.go":         []byte("package main\n\nfunc main() {\n\tprintln(\"hello\")\n}\n"),
		"util/strings.go": []byte("package util\n\n// TODO: more helpers\nfunc Upper(s string) string { return s }\n"),
		"util/math.go":    []byte("package util\n\nfunc Add(a, b int) int { return a + b }\n"),
		"README.md":       []byte("# demo\n\nTODO: write me\n"),
	}})
	if err != nil {
		log.Fatal(err)
	}
	return b
}

// Replace pieces of text, all or none; a piece that is missing or occurs
// more than once is refused with INVALID_ARGUMENT and the file is
// untouched. PreviewEdit shows the diff without writing.
func ExampleEdit() {
	ctx := context.Background()
	b := exampleProject()
	defer b.Close()

	r, err := ab.Edit(ctx, b, "main.go", ab.EditOp{Old: `println("hello")`, New: `println("hello, world")`})
	fmt.Println(r.Replacements, err)
	data, _ := b.Read(ctx, "main.go")
	fmt.Print(string(data))

	_, err = ab.Edit(ctx, b, "main.go", ab.EditOp{Old: "goodbye", New: "x"})
	fmt.Println(err)

	r, _ = ab.PreviewEdit(ctx, b, "README.md", ab.EditOp{Old: "TODO: write me", New: "A demo."})
	fmt.Printf("%q written %v\n", r.After, r.Written)
	// Output:
	// 1 <nil>
	// package main
	//
	// func main() {
	// 	println("hello, world")
	// }
	// INVALID_ARGUMENT: edit main.go: Could not find exact match for edit:
	// goodbye
	// "# demo\n\nA demo.\n" written false
}

// Search file contents: the files with a match (the default mode), then
// the matching lines of Go files with their numbers.
func ExampleGrep() {
	ctx := context.Background()
	b := exampleProject()
	defer b.Close()

	res, err := ab.Grep(ctx, b, ab.GrepOptions{Pattern: "TODO"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Files)

	res, err = ab.Grep(ctx, b, ab.GrepOptions{Pattern: `func \w+`, Type: "go", Mode: ab.GrepContent})
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range res.Lines {
		fmt.Printf("%s:%d: %s\n", l.Path, l.Line, l.Text)
	}

	_, err = ab.Grep(ctx, b, ab.GrepOptions{Pattern: "x", Mode: "lines"})
	fmt.Println(err)
	// Output:
	// [README.md util/strings.go]
	// main.go:3: func main() {
	// util/math.go:3: func Add(a, b int) int { return a + b }
	// util/strings.go:4: func Upper(s string) string { return s }
	// INVALID_ARGUMENT: grep: GrepOptions.Mode "lines" is not one of "files_with_matches", "content", "count"
}

// Find paths by pattern, relative to the directory searched.
func ExampleGlob() {
	ctx := context.Background()
	b := exampleProject()
	defer b.Close()

	all, _ := ab.Glob(ctx, b, "**/*.go", ".")
	fmt.Println(all)
	inUtil, _ := ab.Glob(ctx, b, "*.go", "util")
	fmt.Println(inUtil)
	// Output:
	// [main.go util/math.go util/strings.go]
	// [math.go strings.go]
}

// Read a text file a page at a time, numbered like cat -n; the footer says
// how to read on.
func ExampleReadLines() {
	ctx := context.Background()
	b := exampleProject()
	defer b.Close()

	page, err := ab.ReadLines(ctx, b, "main.go", ab.ReadOptions{Offset: 3, Limit: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(page)

	_, err = ab.ReadLines(ctx, b, "main.go", ab.ReadOptions{Offset: -1})
	fmt.Println(err)
	// Output:
	//      3	func main() {
	//      4		println("hello")
	//
	// [Showing lines 3-4 of 5. Use offset=5 to read more.]
	// INVALID_ARGUMENT: read main.go: ReadOptions.Offset is -1, want 1 or more (0 means 1)
}

// One namespace over several backends: paths under a route go to its
// backend, the rest to the default one.
func ExampleNewComposite() {
	ctx := context.Background()
	project := exampleProject()
	scratch, err := ab.NewMemory(ab.MemoryConfig{})
	if err != nil {
		log.Fatal(err)
	}
	c, err := ab.NewComposite(project, map[string]ab.FileBackend{"/tmp/": scratch})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // closes project and scratch too

	if err := c.Write(ctx, "/tmp/build.log", []byte("ok\n")); err != nil {
		log.Fatal(err)
	}
	names, _ := c.ReadDir(ctx, "/")
	fmt.Println(names)
	inScratch, _ := scratch.ReadDir(ctx, "/")
	fmt.Println(inScratch)
	// Output:
	// [README.md main.go tmp util]
	// [build.log]
}

// A pool keeps one backend per key (a user, a project) and hands the same
// one to every request for that key until it is idle for IdleTimeout.
func ExamplePoolManager() {
	ctx := context.Background()
	made := 0
	pool, err := ab.NewPool(ab.PoolConfig[ab.MemoryConfig]{
		New: func(ctx context.Context, cfg ab.MemoryConfig) (ab.FileBackend, error) {
			made++
			return ab.NewMemory(cfg)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	for _, user := range []string{"alice", "bob", "alice"} {
		err := pool.With(ctx, user, nil, func(b ab.FileBackend) error {
			names, _ := b.ReadDir(ctx, ".")
			fmt.Printf("%s sees %q\n", user, names)
			return b.Write(ctx, user+".txt", []byte("mine"))
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("backends made:", made, "in the pool:", pool.Stats().Total)
	// Output:
	// alice sees []
	// bob sees []
	// alice sees ["alice.txt"]
	// backends made: 2 in the pool: 2
}
