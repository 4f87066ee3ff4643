package agentmcp

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"path"
	"strings"
	"sync"

	ab "github.com/agentbackend/agentbackend"
)

// The reading tools: read_text_file (and its deprecated alias read_file),
// read_media_file and read_multiple_files.

var readOnly = Annotations{ReadOnly: true}

const readTextDesc = "Read the complete contents of a file from the file system as text. " +
	"Handles various text encodings and provides detailed error messages " +
	"if the file cannot be read. Use this tool when you need to examine " +
	"the contents of a single file. Use the 'head' parameter to read only " +
	"the first N lines of a file, or the 'tail' parameter to read only " +
	"the last N lines of a file. Use 'offset' and 'limit' to read a page of lines " +
	"of a large file; the page then ends with a line saying which lines were shown. " +
	"Operates on the file as text regardless of extension. " +
	"Only works within allowed directories."

var (
	readTextFileSpec = &spec{
		name: "read_text_file", title: "Read Text File", desc: readTextDesc,
		input: mustSchema(readTextSchema), output: textOutput, ann: readOnly,
		run: readTextFile("read_text_file"),
	}
	readFileSpec = &spec{
		name: "read_file", title: "Read File (Deprecated)",
		desc:  "Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.",
		input: readTextFileSpec.input, output: textOutput, ann: readOnly,
		run: readTextFile("read_file"),
	}
	readMediaFileSpec = &spec{
		name: "read_media_file", title: "Read Media File",
		desc: "Read a file and return it as a base64-encoded content block with its MIME type. " +
			"Image and audio files are returned as image/audio content; any other file type is " +
			"returned as an embedded resource. Only works within allowed directories.",
		input: mustSchema(readMediaSchema), output: mustSchema(mediaOutputSchema), ann: readOnly,
		run: readMediaFile,
	}
	readMultipleFilesSpec = &spec{
		name: "read_multiple_files", title: "Read Multiple Files",
		desc: "Read the contents of multiple files simultaneously. This is more " +
			"efficient than reading files one by one when you need to analyze " +
			"or compare multiple files. Each file's content is returned with its " +
			"path as a reference. Failed reads for individual files won't stop " +
			"the entire operation. Only works within allowed directories.",
		input: mustSchema(readMultipleSchema), output: textOutput, ann: readOnly,
		run: readMultipleFiles,
	}
)

var textOutput = mustSchema(textOutputSchema)

func readTextFile(name string) func(context.Context, *toolset, map[string]any) (*Result, error) {
	return func(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
		p := str(args, "path")
		offset, hasOffset := num(args, "offset")
		limit, hasLimit := num(args, "limit")
		if hasOffset || hasLimit {
			return t.readPage(ctx, name, p, int(offset), int(limit))
		}
		if _, err := ab.ResolvePath(t.root, p); err != nil {
			return nil, t.fileError(name, err, "read", p)
		}
		head, _ := num(args, "head")
		tail, _ := num(args, "tail")
		if head != 0 && tail != 0 {
			return nil, toolError(name, "Cannot specify both head and tail parameters simultaneously", nil)
		}
		data, err := t.b.Read(ctx, p)
		if err != nil {
			return nil, t.fileError(name, err, "read", p)
		}
		s := string(data)
		switch {
		case tail != 0:
			s = tailLines(s, tail)
		case head != 0:
			s = headLines(s, head)
		}
		return text(s), nil
	}
}

// headLines is the filesystem server's head: the first n lines (a final
// newline does not start another line) joined by "\n", without a trailing
// newline. A fractional n counts up, as the server's loop does.
func headLines(s string, n float64) string {
	if n <= 0 || s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if strings.HasSuffix(s, "\n") {
		lines = lines[:len(lines)-1]
	}
	k := int(math.Min(math.Ceil(n), float64(len(lines))))
	return strings.Join(lines[:k], "\n")
}

// tailLines returns the last n lines of s, line endings normalised to
// "\n" as the filesystem server does. Unlike that server, a final newline
// ends the last line rather than starting an empty one, so tail 2 of
// "a\nb\nc\n" is "b\nc\n" (the server returns "c\n").
func tailLines(s string, n float64) string {
	if n < 0 {
		return ""
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	k := int(n)
	if k == 0 {
		return s
	}
	body, trailing := strings.CutSuffix(s, "\n")
	lines := strings.Split(body, "\n")
	out := strings.Join(lines[max(0, len(lines)-k):], "\n")
	if trailing {
		out += "\n"
	}
	return out
}

// Paging of agent-backend's read_text_file.
const (
	pageDefaultLimit = 1000
	pageMaxLimit     = 5000
)

// readPage is agent-backend 0.13.2's read_text_file with offset and limit:
// the lines of the page joined by "\n", then a footer saying which lines of
// how many were shown, or that the offset is past the end.
func (t *toolset) readPage(ctx context.Context, name, p string, offset, limit int) (*Result, error) {
	if limit <= 0 {
		limit = pageDefaultLimit
	}
	page, err := ab.ReadLines(ctx, t.b, p, ab.ReadOptions{Offset: max(offset, 1), Limit: min(limit, pageMaxLimit)})
	if err != nil {
		return nil, t.fileError(name, err, "read", p)
	}
	body := strings.Join(page.Lines, "\n")
	footer := ""
	switch {
	case len(page.Lines) == 0 && page.First > 1:
		footer = fmt.Sprintf("[offset %s is beyond end of file (%s lines).]", formatCount(page.First), formatCount(page.Total))
	case !page.WholeFile():
		footer = fmt.Sprintf("[showing lines %s-%s of %s.]", formatCount(page.First), formatCount(page.Last()), formatCount(page.Total))
	}
	if footer != "" {
		if body != "" {
			body += "\n"
		}
		body += footer
	}
	return text(body), nil
}

// mediaTypes are the filesystem server's: images and audio by extension.
var mediaTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".bmp": "image/bmp", ".svg": "image/svg+xml",
	".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg", ".flac": "audio/flac",
}

func readMediaFile(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	p := str(args, "path")
	data, err := t.b.Read(ctx, p)
	if err != nil {
		return nil, t.fileError("read_media_file", err, "read", p)
	}
	mime, ok := mediaTypes[strings.ToLower(path.Ext(p))]
	if !ok {
		mime = "application/octet-stream"
	}
	uri := (&url.URL{Scheme: "file", Path: t.abs(p)}).String()
	return &Result{
		Text:  fmt.Sprintf("%s: %s, %d bytes", p, mime, len(data)),
		Media: &Media{MIMEType: mime, Data: data, URI: uri},
	}, nil
}

// readMultipleFiles reads the files concurrently (a few at a time) and
// reports each one's content or error in the order given.
func readMultipleFiles(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	paths := strs(args, "paths")
	parts := make([]string, len(paths))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() {
				<-sem
				if r := recover(); r != nil { // a panic must not escape this goroutine
					parts[i] = fmt.Sprintf("%s: Error - internal error: %v", p, r)
				}
			}()
			data, err := t.b.Read(ctx, p)
			if err != nil {
				parts[i] = p + ": Error - " + t.fileError("read_multiple_files", err, "read", p).Error()
				return
			}
			parts[i] = p + ":\n" + string(data) + "\n"
		})
	}
	wg.Wait()
	return text(strings.Join(parts, "\n---\n")), nil
}
