package causal

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kprobe/kprobe/pipeline/span"
)

// The business mapping turns spans into business objects (settlements, payments, a
// firm's own netting runs) by configuration, so that adding a concept needs no code.

//go:embed mapping.toml
var defaultMappingTOML []byte

// Concept maps spans to one kind of business object.
type Concept struct {
	Label  string `toml:"label"`   // graph node label, e.g. "Settlement"
	Kind   string `toml:"kind"`    // what callers ask for, e.g. "settlement"
	IDAttr string `toml:"id_attr"` // the span attribute that carries the object's ID
	// SpanNames, when set, restricts the concept to spans whose name matches one of these
	// globs (path.Match syntax).
	SpanNames []string `toml:"span_names"`
}

// Mapping is the set of concepts, in the order they are matched.
type Mapping struct {
	Concepts []Concept `toml:"concept"`
}

// Object names one business object.
type Object struct {
	Label, Kind, ID string
}

// NodeID is the object's graph node ID, e.g. "settlement/4821".
func (o Object) NodeID() string { return ObjectNodeID(o.Kind, o.ID) }

// ObjectNodeID is the graph node ID of the business object of this kind and ID.
func ObjectNodeID(kind, id string) string { return kind + "/" + id }

// DefaultMapping is the mapping kprobe ships (mapping.toml): settlement.id, payment.id,
// clearing.window and order.id.
func DefaultMapping() Mapping {
	m, err := ParseMapping(defaultMappingTOML)
	if err != nil {
		panic("the embedded default business mapping is invalid: " + err.Error())
	}
	return m
}

// LoadMapping reads a mapping file; "" gives the default.
func LoadMapping(file string) (Mapping, error) {
	if file == "" {
		return DefaultMapping(), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return Mapping{}, fmt.Errorf("reading business mapping: %w", err)
	}
	m, err := ParseMapping(b)
	if err != nil {
		return Mapping{}, fmt.Errorf("business mapping %s: %w", file, err)
	}
	return m, nil
}

var (
	labelRe = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,62}$`)
	kindRe  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// fixedLabels are the labels the engine draws itself; a concept may not take them.
var fixedLabels = []string{LabelSpan, LabelCause, LabelProcess, LabelThread, LabelFile, LabelSocket, LabelCPU}

// ParseMapping parses and validates a TOML mapping.
func ParseMapping(data []byte) (Mapping, error) {
	var m Mapping
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		return Mapping{}, fmt.Errorf("parsing: %w", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return Mapping{}, fmt.Errorf("unknown key %q (want concept.label, kind, id_attr, span_names)", un[0].String())
	}
	return m, m.validate()
}

func (m Mapping) validate() error {
	if len(m.Concepts) == 0 {
		return errors.New("no [[concept]]: give at least one")
	}
	var errs []error
	kinds := map[string]bool{}
	for i, c := range m.Concepts {
		at := fmt.Sprintf("concept %d (%s)", i+1, c.Kind)
		switch {
		case !labelRe.MatchString(c.Label):
			errs = append(errs, fmt.Errorf("%s: label %q: want a CamelCase name such as NettingRun", at, c.Label))
		case slices.Contains(fixedLabels, c.Label):
			errs = append(errs, fmt.Errorf("%s: label %q is kprobe's own; choose another", at, c.Label))
		}
		if !kindRe.MatchString(c.Kind) {
			errs = append(errs, fmt.Errorf("%s: kind %q: want lowercase letters, digits and _ such as netting_run", at, c.Kind))
		} else if kinds[c.Kind] {
			errs = append(errs, fmt.Errorf("%s: kind %q given twice", at, c.Kind))
		}
		kinds[c.Kind] = true
		if strings.TrimSpace(c.IDAttr) == "" {
			errs = append(errs, fmt.Errorf("%s: id_attr is empty: name the span attribute that carries the ID", at))
		}
		for _, g := range c.SpanNames {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: span_names %q: %w", at, g, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Concept returns the concept of a kind.
func (m Mapping) Concept(kind string) (Concept, bool) {
	for _, c := range m.Concepts {
		if c.Kind == kind {
			return c, true
		}
	}
	return Concept{}, false
}

// Kinds lists the concepts' kinds in order.
func (m Mapping) Kinds() []string {
	out := make([]string, len(m.Concepts))
	for i, c := range m.Concepts {
		out[i] = c.Kind
	}
	return out
}

// Objects returns the business objects a span carries (one per concept that matches).
func (m Mapping) Objects(s *span.Span) []Object {
	var out []Object
	for _, c := range m.Concepts {
		if o, ok := c.match(s); ok {
			out = append(out, o)
		}
	}
	return out
}

func (c Concept) match(s *span.Span) (Object, bool) {
	id := s.Attrs[c.IDAttr]
	if id == "" {
		return Object{}, false
	}
	if len(c.SpanNames) > 0 && !slices.ContainsFunc(c.SpanNames, func(g string) bool {
		ok, _ := path.Match(g, s.Name)
		return ok
	}) {
		return Object{}, false
	}
	return Object{Label: c.Label, Kind: c.Kind, ID: id}, true
}

// Prefixes are the span attribute prefixes ingest must keep for this mapping: the default
// business prefixes plus every concept's ID attribute.
func (m Mapping) Prefixes() []string {
	out := slices.Clone(span.DefaultBusinessPrefixes)
	for _, c := range m.Concepts {
		if !(span.Business{Prefixes: out}).Keep(c.IDAttr) {
			out = append(out, c.IDAttr)
		}
	}
	return out
}
