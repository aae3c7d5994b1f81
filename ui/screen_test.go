package ui

import (
	"regexp"
)

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;:?]*[a-zA-Z]`)

// plainText drops the attributes the ASCII profile keeps (bold, reverse, underline).
func plainText(s string) string { return ansiRE.ReplaceAllString(s, "") }
