// Package ui is the investigation workstation: a bubbletea program an on-call SRE drives
// over SSH, from a settlement ID down the causal chain to kernel events, a local replay
// with tweaks, and a markdown incident report. The root model routes messages to the
// focused page (ui/pages/...); pages are built from small components (ui/components/...)
// and read data only through the use-case layer (pipeline/investigate).
package ui
