package agentmcp

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"
)

// The input schemas: the MCP filesystem server's (same property names,
// types, required lists, defaults and descriptions), with agent-backend
// 0.13.2's extra parameters added as optional properties, and agent-backend's
// for exec and grep. They are written out as JSON so that what clients see
// is exactly what is reviewed here.

// schema is a JSON Schema compiled once: the raw JSON for tool definitions,
// the parsed form for the MCP server, the resolved form for validation.
type schema struct {
	raw      json.RawMessage
	parsed   *jsonschema.Schema
	resolved *jsonschema.Resolved
}

func mustSchema(src string) *schema {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(src)); err != nil {
		panic(fmt.Sprintf("agentmcp: bad schema: %v\n%s", err, src))
	}
	s := &schema{raw: json.RawMessage(buf.Bytes())}
	if err := json.Unmarshal(s.raw, &s.parsed); err != nil {
		panic(fmt.Sprintf("agentmcp: bad schema: %v", err))
	}
	r, err := s.parsed.Resolve(&jsonschema.ResolveOptions{ValidateDefaults: true})
	if err != nil {
		panic(fmt.Sprintf("agentmcp: bad schema: %v", err))
	}
	s.resolved = r
	return s
}

// validate checks raw arguments against the schema and returns them as a
// JSON object. Missing or null arguments are an empty object.
func (s *schema) validate(raw json.RawMessage) (map[string]any, error) {
	args := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &args); err != nil {
			return nil, fmt.Errorf("arguments are not a JSON object: %v", err)
		}
	}
	if err := s.resolved.Validate(args); err != nil {
		return nil, err
	}
	return args, nil
}

const readTextSchema = `{
  "type": "object",
  "properties": {
    "path": {"type": "string"},
    "tail": {"type": "number", "description": "If provided, returns only the last N lines of the file"},
    "head": {"type": "number", "description": "If provided, returns only the first N lines of the file"},
    "offset": {"type": "integer", "exclusiveMinimum": 0, "description": "The 1-based line number to start reading from; pages through the file by lines with limit (agent-backend). The result then ends with a line saying which lines were shown."},
    "limit": {"type": "integer", "exclusiveMinimum": 0, "description": "The number of lines to read from offset (default 1000, at most 5000)."}
  },
  "required": ["path"]
}`

const pathOnlySchema = `{
  "type": "object",
  "properties": {"path": {"type": "string"}},
  "required": ["path"]
}`

const readMediaSchema = `{
  "type": "object",
  "properties": {
    "path": {"type": "string"},
    "force": {"type": "boolean", "description": "Accepted for agent-backend clients; every file type is returned (images and audio as such, anything else as an embedded resource)."}
  },
  "required": ["path"]
}`

const readMultipleSchema = `{
  "type": "object",
  "properties": {
    "paths": {"type": "array", "items": {"type": "string"}, "minItems": 1,
      "description": "Array of file paths to read. Each path must be a string pointing to a valid file within allowed directories."}
  },
  "required": ["paths"]
}`

const writeFileSchema = `{
  "type": "object",
  "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
  "required": ["path", "content"]
}`

const editFileSchema = `{
  "type": "object",
  "properties": {
    "path": {"type": "string"},
    "edits": {"type": "array", "items": {
      "type": "object",
      "properties": {
        "oldText": {"type": "string", "description": "Text to search for - must match exactly"},
        "newText": {"type": "string", "description": "Text to replace with"},
        "replaceAll": {"type": "boolean", "description": "Replace every occurrence of oldText; without it oldText must occur exactly once."}
      },
      "required": ["oldText", "newText"]
    }},
    "dryRun": {"type": "boolean", "default": false, "description": "Preview changes using git-style diff format"}
  },
  "required": ["path", "edits"]
}`

const listSizesSchema = `{
  "type": "object",
  "properties": {
    "path": {"type": "string"},
    "sortBy": {"type": "string", "enum": ["name", "size"], "default": "name", "description": "Sort entries by name or size"}
  },
  "required": ["path"]
}`

const treeSchema = `{
  "type": "object",
  "properties": {
    "path": {"type": "string"},
    "excludePatterns": {"type": "array", "items": {"type": "string"}, "default": []},
    "includeDefaultExcludes": {"type": "boolean", "default": false, "description": "Also exclude common non-essential directories (.git, node_modules, .venv, dist, build, ...), as agent-backend does by default."}
  },
  "required": ["path"]
}`

const moveSchema = `{
  "type": "object",
  "properties": {"source": {"type": "string"}, "destination": {"type": "string"}},
  "required": ["source", "destination"]
}`

const searchSchema = `{
  "type": "object",
  "properties": {
    "path": {"type": "string"},
    "pattern": {"type": "string"},
    "excludePatterns": {"type": "array", "items": {"type": "string"}, "default": []},
    "sortBy": {"type": "string", "enum": ["path", "mtime"], "description": "Sort the results by path, or by modification time, newest first (agent-backend). Without it results come in directory-walk order."}
  },
  "required": ["path", "pattern"]
}`

const noArgsSchema = `{"type": "object", "properties": {}}`

const execSchema = `{
  "type": "object",
  "properties": {
    "command": {"type": "string", "description": "Shell command to execute"},
    "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Optional environment variables to set for this command"},
    "background": {"type": "boolean", "default": false, "description": "Start the command in the background and return its shell_id at once (see run_in_background)"}
  },
  "required": ["command"]
}`

const grepSchema = `{
  "type": "object",
  "properties": {
    "pattern": {"type": "string", "description": "Regular expression to search for (RE2 syntax)"},
    "path": {"type": "string", "description": "File or directory to search in. Defaults to the workspace root."},
    "glob": {"type": "string", "description": "Glob to filter which files are searched (e.g. \"*.ts\", \"src/**/*.py\")"},
    "type": {"type": "string", "description": "File type to search (e.g. \"js\", \"py\", \"rust\", \"go\")"},
    "outputMode": {"type": "string", "enum": ["content", "files_with_matches", "count"], "description": "\"files_with_matches\" (default) returns matching paths; \"count\" returns per-file match counts; \"content\" returns matching lines."},
    "caseInsensitive": {"type": "boolean", "description": "Case-insensitive matching."},
    "multiline": {"type": "boolean", "description": "Allow patterns to match across newlines (\".\" matches newlines too)."},
    "contextBefore": {"type": "integer", "minimum": 0, "description": "Lines of context before each match. Ignored outside content mode."},
    "contextAfter": {"type": "integer", "minimum": 0, "description": "Lines of context after each match. Ignored outside content mode."},
    "contextAround": {"type": "integer", "minimum": 0, "description": "Lines of context on both sides of each match; contextBefore/contextAfter override it for their side. Ignored outside content mode."},
    "lineNumbers": {"type": "boolean", "description": "Prefix content-mode output with line numbers. Ignored for other output modes."},
    "headLimit": {"type": "integer", "exclusiveMinimum": 0, "description": "Cap the result to the first N output lines."}
  },
  "required": ["pattern"]
}`

// textOutput is the output schema of every tool answering in text: the
// filesystem server's structuredContent {"content": text}.
const textOutputSchema = `{
  "type": "object",
  "properties": {"content": {"type": "string"}},
  "required": ["content"],
  "additionalProperties": false
}`

const mediaOutputSchema = `{
  "type": "object",
  "properties": {
    "content": {"type": "array", "items": {"anyOf": [
      {"type": "object", "properties": {
        "type": {"type": "string", "enum": ["image", "audio"]},
        "data": {"type": "string"},
        "mimeType": {"type": "string"}
      }, "required": ["type", "data", "mimeType"], "additionalProperties": false},
      {"type": "object", "properties": {
        "type": {"type": "string", "const": "resource"},
        "resource": {"type": "object", "properties": {
          "uri": {"type": "string"}, "mimeType": {"type": "string"}, "blob": {"type": "string"}
        }, "required": ["uri", "blob"], "additionalProperties": false}
      }, "required": ["type", "resource"], "additionalProperties": false}
    ]}}
  },
  "required": ["content"],
  "additionalProperties": false
}`
