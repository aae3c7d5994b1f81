package investigate

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is a business kind and the span attribute that carries its IDs: the one mapping
// from what an SRE asks for (settlement 4821) to what the stores keep (spans and events
// whose attribute settlement.id is 4821).
type Kind struct {
	Name string // settlement
	Attr string // settlement.id
}

// DefaultKinds are the business kinds understood without configuration.
var DefaultKinds = []Kind{
	{KindSettlement, "settlement.id"},
	{KindPayment, "payment.id"},
	{KindClearingWindow, "clearing.window"},
	{KindOrderBookOp, "order.id"},
}

// kinds resolves kind names to attributes.
type kinds []Kind

// withKinds is DefaultKinds with extra added (an extra kind of the same name replaces
// the default one).
func withKinds(extra []Kind) (kinds, error) {
	out := slices.Clone(DefaultKinds)
	for _, k := range extra {
		if k.Name == "" || k.Attr == "" {
			return nil, fmt.Errorf("business kind %+v: want a name and a span attribute", k)
		}
		if i := slices.IndexFunc(out, func(d Kind) bool { return d.Name == k.Name }); i >= 0 {
			out[i] = k
			continue
		}
		out = append(out, k)
	}
	return out, nil
}

// attr is the span attribute of a kind.
func (ks kinds) attr(name string) (string, error) {
	for _, k := range ks {
		if k.Name == name {
			return k.Attr, nil
		}
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return "", fmt.Errorf("%w: unknown kind %q (known: %s)", ErrInvalid, name, strings.Join(names, ", "))
}
