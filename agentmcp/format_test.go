package agentmcp

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The expectations below were measured with Node.js 20 (ICU collation,
// Number.prototype.toFixed, Date.prototype.toString with TZ=UTC), which the
// MCP filesystem server runs on.

func TestFormatSize(t *testing.T) {
	sizes := []int64{0, 1, 18, 1023, 1024, 1152, 1536, 1048575, 1048576, 3145728, 1073741824, 1099511627776, 5e15}
	want := []string{"0 B", "1 B", "18 B", "1023 B", "1.00 KB", "1.13 KB", "1.50 KB", "1024.00 KB", "1.00 MB", "3.00 MB", "1.00 GB", "1.00 TB", "4547.47 TB"}
	for i, n := range sizes {
		if got := formatSize(n); got != want[i] {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want[i])
		}
	}
	if got := formatSize(-5); got != "0 B" {
		t.Errorf("negative: %q", got)
	}
}

func TestLocaleCompareMatchesNode(t *testing.T) {
	want := []string{"_x", "(p)", "~t", "$d", "10.txt", "9.txt", "a", "A", "a b", "a_b", "a-b", "a.b", "a1", "a10", "a2",
		"ab", "aB", "Ab", "b", "B", "e", "é", "f", "file_1.txt", "file-1.txt", "file.txt", "File.txt", "resume", "Resume",
		"résumé", "umlaut.txt", "ümlaut.txt", "x_", "z", "Z", "Zed.txt"}
	for range 20 {
		names := slices.Clone(want)
		rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		slices.SortStableFunc(names, localeCompare)
		if !slices.Equal(names, want) {
			t.Fatalf("sorted:\n%q\nwant\n%q", names, want)
		}
	}
	if localeCompare("same", "same") != 0 {
		t.Fatal("equal strings")
	}
}

func TestJSFormats(t *testing.T) {
	d := time.Date(2026, 1, 5, 3, 4, 5, 0, time.UTC)
	old := time.Local
	time.Local = time.UTC
	defer func() { time.Local = old }()
	if got := jsDate(d); got != "Mon Jan 05 2026 03:04:05 GMT+0000 (Coordinated Universal Time)" {
		t.Errorf("jsDate: %q", got)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 4512: "4,512", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q", n, got)
		}
	}
	if got := padEnd("ü😀", 5); got != "ü😀  " { // 😀 is two UTF-16 units
		t.Errorf("padEnd: %q", got)
	}
	if got := padStart("1 B", 6); got != "   1 B" {
		t.Errorf("padStart: %q", got)
	}
	for v, want := range map[float64]string{1.125: "1.13", 1.005: "1.00", 0.5: "0.50", 1023.9990234375: "1024.00", 2.675: "2.67"} {
		if got := toFixed2(v); got != want {
			t.Errorf("toFixed2(%v) = %q, want %q", v, got, want)
		}
	}
}
