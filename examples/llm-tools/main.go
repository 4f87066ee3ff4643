// Command llm-tools gives a model the agentbackend tools through the
// Anthropic Messages API, without MCP: agentmcp.Tools provides each tool's
// name, description and JSON Schema for the request, and runs the tool_use
// blocks of the reply.
//
// It runs offline: the model's reply is canned (a Message as the API
// returns it), so the program shows one whole tool-use round trip, from the
// tool definitions sent to the tool_result blocks of the next request,
// without an API key. To talk to the real API, send the params with
// client.Messages.New and loop until the reply's StopReason is not
// "tool_use".
//
// This example has its own go.mod so that the agentbackend module does not
// depend on an LLM SDK.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/anthropics/anthropic-sdk-go"
)

// cannedReply is what the model might answer to the first request: some
// text and three tool calls, one of which fails.
const cannedReply = `{
  "id": "msg_01",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5",
  "stop_reason": "tool_use",
  "content": [
    {"type": "text", "text": "Let me look at the project and fix the greeting."},
    {"type": "tool_use", "id": "toolu_01", "name": "grep", "input": {"pattern": "Hello", "outputMode": "content", "lineNumbers": true}},
    {"type": "tool_use", "id": "toolu_02", "name": "edit_file", "input": {"path": "main.go", "edits": [{"oldText": "Hello, wrold", "newText": "Hello, world"}]}},
    {"type": "tool_use", "id": "toolu_03", "name": "read_text_file", "input": {"path": "../../etc/shadow"}}
  ],
  "usage": {"input_tokens": 1200, "output_tokens": 120}
}`

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// The workspace: here in memory; ab.NewLocal gives a directory (and
	// the exec tool).
	b, err := ab.NewMemory(ab.MemoryConfig{RootDir: "/project", InitialData: map[string][]byte{
		"main.go": []byte("package main\n\nfunc main() { println(\"Hello, wrold\") }\n"),
	}})
	if err != nil {
		return err
	}
	defer b.Close()

	tools := agentmcp.Tools(b, nil)
	byName := make(map[string]agentmcp.Tool, len(tools))
	for _, t := range tools {
		byName[t.Name] = t
	}
	params := anthropic.MessageNewParams{
		Model:     anthropic.Model("claude-sonnet-4-5"),
		MaxTokens: 1024,
		Tools:     anthropicTools(tools),
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("The greeting in main.go has a typo. Fix it.")),
		},
	}
	fmt.Fprintf(out, "request 1: %d tools, %d message(s)\n", len(params.Tools), len(params.Messages))

	// reply, err := client.Messages.New(ctx, params) would go here.
	var reply anthropic.Message
	if err := json.Unmarshal([]byte(cannedReply), &reply); err != nil {
		return err
	}

	// Run each tool_use block and answer it with a tool_result block.
	var results []anthropic.ContentBlockParamUnion
	for _, block := range reply.Content {
		switch v := block.AsAny().(type) {
		case anthropic.TextBlock:
			fmt.Fprintf(out, "model: %s\n", v.Text)
		case anthropic.ToolUseBlock:
			fmt.Fprintf(out, "tool_use %s %s\n", v.Name, v.Input)
			result := callTool(ctx, byName, v)
			results = append(results, anthropic.ContentBlockParamUnion{OfToolResult: &result})
			for _, c := range result.Content {
				if c.OfText != nil {
					fmt.Fprintf(out, "tool_result (error: %v):\n%s\n", result.IsError.Value, c.OfText.Text)
				}
			}
		}
	}
	params.Messages = append(params.Messages, reply.ToParam(), anthropic.NewUserMessage(results...))
	body, err := json.Marshal(params)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "request 2: %d message(s), %d bytes of JSON\n", len(params.Messages), len(body))
	return nil
}

// anthropicTools turns the tool definitions into the API's tool params.
func anthropicTools(tools []agentmcp.Tool) []anthropic.ToolUnionParam {
	out := make([]anthropic.ToolUnionParam, 0, len(tools))
	for _, t := range tools {
		var schema struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		}
		if err := json.Unmarshal(t.InputSchema, &schema); err != nil {
			panic(err) // the schemas are fixed JSON; this cannot happen
		}
		tool := anthropic.ToolParam{
			Name:        t.Name,
			Description: anthropic.String(t.Description),
			InputSchema: anthropic.ToolInputSchemaParam{Properties: schema.Properties, Required: schema.Required},
		}
		out = append(out, anthropic.ToolUnionParam{OfTool: &tool})
	}
	return out
}

// callTool runs one tool_use block. A failure the model can correct (a
// missing file, a path outside the workspace) goes back to it as an error
// result; read_media_file's images go back as image blocks.
func callTool(ctx context.Context, tools map[string]agentmcp.Tool, use anthropic.ToolUseBlock) anthropic.ToolResultBlockParam {
	result := anthropic.ToolResultBlockParam{ToolUseID: use.ID}
	text := func(s string) {
		result.Content = append(result.Content, anthropic.ToolResultBlockParamContentUnion{OfText: &anthropic.TextBlockParam{Text: s}})
	}
	tool, ok := tools[use.Name]
	if !ok {
		result.IsError = anthropic.Bool(true)
		text("unknown tool " + use.Name)
		return result
	}
	res, err := tool.Call(ctx, use.Input)
	var toolErr *agentmcp.ToolError
	switch {
	case errors.As(err, &toolErr):
		result.IsError = anthropic.Bool(true)
		text(toolErr.Error())
	case err != nil:
		result.IsError = anthropic.Bool(true)
		text("internal error: " + err.Error())
	case res.Media != nil && isImage(res.Media.MIMEType):
		img := anthropic.NewImageBlockBase64(res.Media.MIMEType, base64.StdEncoding.EncodeToString(res.Media.Data))
		result.Content = append(result.Content, anthropic.ToolResultBlockParamContentUnion{OfImage: img.OfImage})
	default:
		text(res.Text)
	}
	return result
}

func isImage(mime string) bool {
	switch mime {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}
