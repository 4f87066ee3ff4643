// Package udiff renders unified diffs of text, line by line, exactly as the
// JavaScript "diff" package (v8) does in createTwoFilesPatch: the same
// Myers variant with the same tie-breaking, the same hunk grouping with
// four lines of context, and the same headers. The MCP filesystem server
// shows its edits in that format, so clients written against it parse ours.
package udiff

import (
	"strconv"
	"strings"
)

// DefaultContext is the number of unchanged lines shown around a change,
// the "diff" package's default.
const DefaultContext = 4

// MaxSteps bounds the work of the line matching (the number of diagonals
// visited, about edits² / 2): past it the diff gives up on a minimal script
// and shows the whole file as replaced, which is still a correct diff. It
// keeps a pathological edit from holding a CPU for minutes; up to about
// 2,800 changed lines are diffed exactly, in well under a second.
const MaxSteps = 4_000_000

// underline is the line between the Index header and the file headers.
const underline = "==================================================================="

// TwoFiles returns the unified diff turning a into b, with an "Index:" line
// when the names are equal, headers "--- oldName\toldHeader" and
// "+++ newName\tnewHeader" (without the tab when a header is empty), and
// hunks with DefaultContext lines of context. It ends with a newline.
func TwoFiles(oldName, newName, a, b, oldHeader, newHeader string) string {
	var sb strings.Builder
	if oldName == newName {
		sb.WriteString("Index: " + oldName + "\n")
	}
	sb.WriteString(underline + "\n")
	sb.WriteString("--- " + oldName)
	if oldHeader != "" {
		sb.WriteString("\t" + oldHeader)
	}
	sb.WriteString("\n+++ " + newName)
	if newHeader != "" {
		sb.WriteString("\t" + newHeader)
	}
	sb.WriteString("\n")
	for _, h := range hunks(diffLines(tokenize(a), tokenize(b)), DefaultContext) {
		oldStart, newStart := h.oldStart, h.newStart
		if h.oldLines == 0 {
			oldStart--
		}
		if h.newLines == 0 {
			newStart--
		}
		sb.WriteString("@@ -" + strconv.Itoa(oldStart) + "," + strconv.Itoa(h.oldLines) +
			" +" + strconv.Itoa(newStart) + "," + strconv.Itoa(h.newLines) + " @@\n")
		for _, l := range h.lines {
			sb.WriteString(l)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// tokenize splits text into lines that keep their line endings ("\n" or
// "\r\n"); a final line without one is kept as it is, empty tokens dropped.
func tokenize(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i+1])
		s = s[i+1:]
	}
	return lines
}

// component is a run of lines that are equal in both texts, added or removed.
type component struct {
	count          int
	added, removed bool
	prev           *component
	lines          []string
}

type pathHead struct {
	oldPos int
	last   *component
}

// diffLines is the "diff" package's Diff.diff for lines: Myers' algorithm
// with its diagonal pruning and its choice between an insertion and a
// deletion when both reach as far.
func diffLines(oldT, newT []string) []*component {
	newLen, oldLen := len(newT), len(oldT)
	maxEdit := newLen + oldLen
	// best[d+off] is the furthest path on diagonal d (the "diff" package's
	// bestPath, an array indexed by possibly negative diagonals).
	off := maxEdit + 1
	best := make([]*pathHead, 2*maxEdit+3)
	best[off] = &pathHead{oldPos: -1}
	newPos := extractCommon(best[off], newT, oldT, 0)
	if best[off].oldPos+1 >= oldLen && newPos+1 >= newLen {
		return buildValues(best[off].last, newT, oldT)
	}
	minDiag, maxDiag := -maxEdit-1, maxEdit+1
	steps := 0
	for editLength := 1; editLength <= maxEdit && steps <= MaxSteps; editLength++ {
		for d := max(minDiag, -editLength); d <= min(maxDiag, editLength); d += 2 {
			steps++
			removePath, addPath := best[d-1+off], best[d+1+off]
			if removePath != nil {
				best[d-1+off] = nil
			}
			canAdd := false
			if addPath != nil {
				addNewPos := addPath.oldPos - d
				canAdd = 0 <= addNewPos && addNewPos < newLen
			}
			canRemove := removePath != nil && removePath.oldPos+1 < oldLen
			if !canAdd && !canRemove {
				best[d+off] = nil
				continue
			}
			var base *pathHead
			if !canRemove || (canAdd && removePath.oldPos < addPath.oldPos) {
				base = addToPath(addPath, true, false, 0)
			} else {
				base = addToPath(removePath, false, true, 1)
			}
			newPos = extractCommon(base, newT, oldT, d)
			if base.oldPos+1 >= oldLen && newPos+1 >= newLen {
				return buildValues(base.last, newT, oldT)
			}
			best[d+off] = base
			if base.oldPos+1 >= oldLen {
				maxDiag = min(maxDiag, d-1)
			}
			if newPos+1 >= newLen {
				minDiag = max(minDiag, d+1)
			}
		}
	}
	// Over budget: everything old removed, everything new added.
	var out []*component
	if oldLen > 0 {
		out = append(out, &component{count: oldLen, removed: true, lines: oldT})
	}
	if newLen > 0 {
		out = append(out, &component{count: newLen, added: true, lines: newT})
	}
	return out
}

func addToPath(p *pathHead, added, removed bool, oldPosInc int) *pathHead {
	last := p.last
	if last != nil && last.added == added && last.removed == removed {
		return &pathHead{oldPos: p.oldPos + oldPosInc,
			last: &component{count: last.count + 1, added: added, removed: removed, prev: last.prev}}
	}
	return &pathHead{oldPos: p.oldPos + oldPosInc,
		last: &component{count: 1, added: added, removed: removed, prev: last}}
}

func extractCommon(base *pathHead, newT, oldT []string, diag int) int {
	newLen, oldLen := len(newT), len(oldT)
	oldPos := base.oldPos
	newPos := oldPos - diag
	common := 0
	for newPos+1 < newLen && oldPos+1 < oldLen && oldT[oldPos+1] == newT[newPos+1] {
		newPos++
		oldPos++
		common++
	}
	if common > 0 {
		base.last = &component{count: common, prev: base.last}
	}
	base.oldPos = oldPos
	return newPos
}

func buildValues(last *component, newT, oldT []string) []*component {
	var comps []*component
	for c := last; c != nil; c = c.prev {
		comps = append(comps, c)
	}
	for i, j := 0, len(comps)-1; i < j; i, j = i+1, j-1 {
		comps[i], comps[j] = comps[j], comps[i]
	}
	newPos, oldPos := 0, 0
	for _, c := range comps {
		if !c.removed {
			c.lines = newT[newPos : newPos+c.count]
			newPos += c.count
			if !c.added {
				oldPos += c.count
			}
		} else {
			c.lines = oldT[oldPos : oldPos+c.count]
			oldPos += c.count
		}
		c.prev = nil
	}
	return comps
}

type hunk struct {
	oldStart, oldLines, newStart, newLines int
	lines                                  []string
}

// hunks groups the changes with their context, as structuredPatch does, and
// strips line endings, adding "\ No newline at end of file" where a line
// had none.
func hunks(diff []*component, context int) []hunk {
	diff = append(diff, &component{}) // the sentinel the "diff" package appends
	var out []hunk
	oldRangeStart, newRangeStart := 0, 0
	var cur []string
	oldLine, newLine := 1, 1
	ctxLines := func(lines []string) []string {
		r := make([]string, len(lines))
		for i, l := range lines {
			r[i] = " " + l
		}
		return r
	}
	for i, c := range diff {
		lines := c.lines
		if c.added || c.removed {
			if oldRangeStart == 0 {
				oldRangeStart, newRangeStart = oldLine, newLine
				if i > 0 {
					prev := diff[i-1].lines
					cur = nil
					if context > 0 {
						cur = ctxLines(prev[max(0, len(prev)-context):])
					}
					oldRangeStart -= len(cur)
					newRangeStart -= len(cur)
				}
			}
			sign := "-"
			if c.added {
				sign = "+"
			}
			for _, l := range lines {
				cur = append(cur, sign+l)
			}
			if c.added {
				newLine += len(lines)
			} else {
				oldLine += len(lines)
			}
			continue
		}
		if oldRangeStart != 0 {
			if len(lines) <= context*2 && i < len(diff)-2 {
				cur = append(cur, ctxLines(lines)...)
			} else {
				n := min(len(lines), context)
				cur = append(cur, ctxLines(lines[:n])...)
				out = append(out, hunk{oldStart: oldRangeStart, oldLines: oldLine - oldRangeStart + n,
					newStart: newRangeStart, newLines: newLine - newRangeStart + n, lines: cur})
				oldRangeStart, newRangeStart, cur = 0, 0, nil
			}
		}
		oldLine += len(lines)
		newLine += len(lines)
	}
	for k := range out {
		var fixed []string
		for _, l := range out[k].lines {
			if strings.HasSuffix(l, "\n") {
				fixed = append(fixed, l[:len(l)-1])
			} else {
				fixed = append(fixed, l, `\ No newline at end of file`)
			}
		}
		out[k].lines = fixed
	}
	return out
}
