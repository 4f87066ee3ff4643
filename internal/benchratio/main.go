// Command benchratio reads `go test -bench` output on stdin, echoes it, and
// prints, for every benchmark that has a sub-benchmark named "raw" (the
// baseline measured in the same run), the ratio of each sibling to it.
//
//	BenchmarkLocalRead/raw-2   1000000   1200 ns/op
//	BenchmarkLocalRead/sdk-2   1000000   1300 ns/op
//	→ ratio BenchmarkLocalRead/sdk: 1.08x raw (1300 ns/op vs 1200 ns/op)
//
// `make bench` pipes the benchmarks through it so every speed target is read
// as a ratio against its baseline, never as an absolute duration.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

type result struct {
	name string
	ns   float64
}

func main() {
	var results []result
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		fmt.Println(text)
		if m := line.FindStringSubmatch(text); m != nil {
			ns, err := strconv.ParseFloat(m[2], 64)
			if err == nil {
				results = append(results, result{m[1], ns})
			}
		}
	}
	raw := map[string]float64{}
	for _, r := range results {
		if parent, ok := strings.CutSuffix(r.name, "/raw"); ok {
			raw[parent] = r.ns
		}
	}
	printed := false
	for _, r := range results {
		i := strings.LastIndex(r.name, "/")
		if i < 0 || strings.HasSuffix(r.name, "/raw") {
			continue
		}
		base, ok := raw[r.name[:i]]
		if !ok || base == 0 {
			continue
		}
		if !printed {
			fmt.Println("\nratios against the raw baseline of the same run:")
			printed = true
		}
		fmt.Printf("ratio %s: %.2fx raw (%.0f ns/op vs %.0f ns/op)\n", r.name, r.ns/base, r.ns, base)
	}
}
