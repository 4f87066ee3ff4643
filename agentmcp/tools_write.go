package agentmcp

import (
	"context"
	"strings"

	ab "github.com/agentbackend/agentbackend"
)

// The tools that change the workspace: write_file, edit_file,
// create_directory and move_file.

var (
	writeFileSpec = &spec{
		name: "write_file", title: "Write File",
		desc: "Create a new file or completely overwrite an existing file with new content. " +
			"Use with caution as it will overwrite existing files without warning. " +
			"Handles text content with proper encoding. Missing parent directories are created. " +
			"Only works within allowed directories.",
		input: mustSchema(writeFileSchema), output: textOutput,
		ann: Annotations{Destructive: true, Idempotent: true},
		run: writeFile,
	}
	editFileSpec = &spec{
		name: "edit_file", title: "Edit File",
		desc: "Make line-based edits to a text file. Each edit replaces exact line sequences " +
			"with new content; oldText must occur exactly once unless replaceAll is set for that edit. " +
			"Edits apply in order, each seeing the result of the ones before. " +
			"Returns a git-style diff showing the changes made. " +
			"Only works within allowed directories.",
		input: mustSchema(editFileSchema), output: textOutput,
		ann: Annotations{Destructive: true},
		run: editFile,
	}
	createDirectorySpec = &spec{
		name: "create_directory", title: "Create Directory",
		desc: "Create a new directory or ensure a directory exists. Can create multiple " +
			"nested directories in one operation. If the directory already exists, " +
			"this operation will succeed silently. Perfect for setting up directory " +
			"structures for projects or ensuring required paths exist. Only works within allowed directories.",
		input: mustSchema(pathOnlySchema), output: textOutput,
		ann: Annotations{Idempotent: true},
		run: createDirectory,
	}
	moveFileSpec = &spec{
		name: "move_file", title: "Move File",
		desc: "Move or rename files and directories. Can move files between directories " +
			"and rename them in a single operation. If the destination exists, the " +
			"operation will fail. Works across different directories and can be used " +
			"for simple renaming within the same directory. Missing parent directories of the " +
			"destination are created. Both source and destination must be within allowed directories.",
		input: mustSchema(moveSchema), output: textOutput,
		ann: Annotations{Destructive: true},
		run: moveFile,
	}
)

func writeFile(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	p := str(args, "path")
	if err := t.b.Write(ctx, p, []byte(str(args, "content"))); err != nil {
		return nil, t.fileError("write_file", err, "open", p)
	}
	return text("Successfully wrote to " + p), nil
}

func editFile(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	p := str(args, "path")
	list, _ := args["edits"].([]any)
	edits := make([]ab.EditOp, 0, len(list))
	for _, item := range list {
		m, _ := item.(map[string]any)
		edits = append(edits, ab.EditOp{Old: str(m, "oldText"), New: str(m, "newText"), ReplaceAll: boolean(m, "replaceAll")})
	}
	edit := ab.Edit
	if boolean(args, "dryRun") {
		edit = ab.PreviewEdit
	}
	r, err := edit(ctx, t.b, p, edits...)
	if err != nil {
		if ab.ErrorCode(err) == ab.CodeInvalidArgument {
			return nil, reasonError("edit_file", err)
		}
		return nil, t.fileError("edit_file", err, "read", p)
	}
	diff := r.Diff(t.abs(p))
	fence := "```"
	for strings.Contains(diff, fence) {
		fence += "`"
	}
	return text(fence + "diff\n" + diff + fence + "\n\n"), nil
}

func createDirectory(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	p := str(args, "path")
	if err := t.b.Mkdir(ctx, p); err != nil {
		return nil, t.fileError("create_directory", err, "mkdir", p)
	}
	return text("Successfully created directory " + p), nil
}

func moveFile(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	src, dst := str(args, "source"), str(args, "destination")
	for _, p := range []string{src, dst} {
		if _, err := ab.ResolvePath(t.root, p); err != nil {
			return nil, t.fileError("move_file", err, "rename", p)
		}
	}
	exists, err := t.b.Exists(ctx, dst)
	if err != nil {
		return nil, t.fileError("move_file", err, "rename", dst)
	}
	if exists {
		return nil, toolError("move_file", "Destination already exists: "+t.abs(dst), nil)
	}
	if err := t.b.Rename(ctx, src, dst); err != nil {
		return nil, t.fileError("move_file", err, "rename", src, dst)
	}
	return text("Successfully moved " + src + " to " + dst), nil
}
