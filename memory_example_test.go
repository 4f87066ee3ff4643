package agentbackend_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"

	"github.com/agentbackend/agentbackend"
)

func ExampleNewMemory() {
	ctx := context.Background()
	b, err := agentbackend.NewMemory(agentbackend.MemoryConfig{
		RootDir:     "/workspace",
		InitialData: map[string][]byte{"notes/todo.md": []byte("- write tests\n")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	if err := b.Write(ctx, "/workspace/src/main.go", []byte("package main\n")); err != nil {
		log.Fatal(err)
	}
	names, _ := b.ReadDir(ctx, ".")
	fmt.Println(names)

	_, err = b.Read(ctx, "missing.txt")
	fmt.Println(agentbackend.ErrorCode(err), errors.Is(err, fs.ErrNotExist))

	_, err = b.Read(ctx, "../etc/passwd")
	fmt.Println(agentbackend.ErrorCode(err))
	// Output:
	// [notes src]
	// READ_FAILED true
	// PATH_ESCAPE_ATTEMPT
}

func ExampleMemoryBackend_ListKeys() {
	b, err := agentbackend.NewMemory(agentbackend.MemoryConfig{InitialData: map[string][]byte{
		"a/x": nil, "a/y/z": nil, "ab": nil, "a.txt": nil,
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	fmt.Println(b.ListKeys("a"))           // whole path elements
	fmt.Println(b.ListKeysWithPrefix("a")) // plain string prefix
	// Output:
	// [a/x a/y/z]
	// [a.txt a/x a/y/z ab]
}

func ExampleMemoryBackend_Scope() {
	ctx := context.Background()
	b, err := agentbackend.NewMemory(agentbackend.MemoryConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	alice, err := b.Scope("users/alice", nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.Write(ctx, "diary.txt", []byte("dear diary")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.ListKeys(""))
	_, err = alice.Read(ctx, "../bob/secret")
	fmt.Println(agentbackend.ErrorCode(err))
	// Output:
	// [users/alice/diary.txt]
	// PATH_ESCAPE_ATTEMPT
}
