package agentmcp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// TestListingsOfLinks: symbolic links list as files, as the reference's
// readdir types them, and directory_tree does not descend into them, so a
// link back up cannot make it loop.
func TestListingsOfLinks(t *testing.T) {
	b := newLocal(t, ab.LocalConfig{})
	root := b.RootDir()
	for _, p := range []string{"src/inner", "docs"} {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "src/a.go"), []byte("package a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"src/loop": "..", "src/alias.go": "a.go", "docs/src": "../src"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	cs := connect(t, b)

	want(t, cs, "list_directory", obj{"path": "src"}, "[FILE] a.go\n[FILE] alias.go\n[DIR] inner\n[FILE] loop")
	tree := call(t, cs, "directory_tree", obj{"path": "."})
	if tree.IsError || strings.Count(tree.Text, `"name": "a.go"`) != 1 || !strings.Contains(tree.Text, `"name": "loop",`+"\n"+`        "type": "file"`) {
		t.Errorf("directory_tree over a link loop:\n%s", tree.Text)
	}
	sizes := call(t, cs, "list_directory_with_sizes", obj{"path": "docs"})
	if sizes.IsError || !strings.Contains(sizes.Text, "Total: 1 files, 0 directories") {
		t.Errorf("list_directory_with_sizes of a link to a directory:\n%s", sizes.Text)
	}

	// The listing API still describes a link by its target, and says it is one.
	entries, err := ab.Ls(t.Context(), b, "src", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Symlink != (e.Name == "loop" || e.Name == "alias.go") || e.IsDir != (e.Name == "loop" || e.Name == "inner") {
			t.Errorf("Ls entry %+v", e)
		}
	}
	// Walks do not follow a link to a directory.
	names, err := ab.Glob(t.Context(), b, "**/*.go", ".")
	if err != nil || strings.Join(names, ",") != "src/a.go,src/alias.go" {
		t.Errorf("Glob = %q, %v", names, err)
	}
}
