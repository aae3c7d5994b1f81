package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

type record struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	allowFile := "scripts/allowed-skips.txt"
	if len(os.Args) > 1 {
		allowFile = os.Args[1]
	}
	os.Exit(run(os.Stdin, os.Stdout, allowFile))
}

func run(in io.Reader, out io.Writer, allowFile string) int {
	allowed, err := loadAllowed(allowFile)
	if err != nil {
		fmt.Fprintln(out, "testsummary:", err)
		return 2
	}
	var passed, failed, skipped int
	var failures, badSkips []string
	skipReason := map[string]string{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fmt.Fprintln(out, sc.Text())
			continue
		}
		name := r.Package + "." + r.Test
		switch r.Action {
		case "output":
			fmt.Fprint(out, r.Output)
			// The skip reason is the last "file.go:N: ..." line the test printed.
			if r.Test != "" && strings.Contains(r.Output, ".go:") {
				skipReason[name] = strings.TrimSpace(r.Output)
			}
		case "pass":
			if r.Test != "" {
				passed++
			}
		case "fail":
			if r.Test != "" {
				failed++
				failures = append(failures, name)
			} else if r.Package != "" {
				failures = append(failures, r.Package+" (package)")
			}
		case "skip":
			if r.Test == "" {
				continue
			}
			skipped++
			if !matches(allowed, name) {
				badSkips = append(badSkips, name+": "+skipReason[name])
			}
		}
	}
	sort.Strings(failures)
	sort.Strings(badSkips)
	for _, f := range failures {
		fmt.Fprintln(out, "FAILED:", f)
	}
	for _, s := range badSkips {
		fmt.Fprintln(out, "SKIPPED (not allowed in this run):", s)
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if len(failures) > 0 || len(badSkips) > 0 {
		return 1
	}
	return 0
}

func loadAllowed(path string) ([]*regexp.Regexp, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading allowed skips: %w", err)
	}
	var out []*regexp.Regexp
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pat, _, _ := strings.Cut(line, " ")
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, pat, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func matches(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}
