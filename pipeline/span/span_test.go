package span

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBusinessFilter(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		in       map[string]string
		want     map[string]string
	}{
		{"nil", nil, nil, nil},
		{"default keeps business", nil,
			map[string]string{"settlement.id": "4821", "http.method": "POST", "payment.id": "PAY-98721"},
			map[string]string{"settlement.id": "4821", "payment.id": "PAY-98721"}},
		{"none kept", nil, map[string]string{"http.method": "POST"}, nil},
		{"custom prefixes", []string{"netting."},
			map[string]string{"netting.run": "7", "settlement.id": "4821"},
			map[string]string{"netting.run": "7"}},
		{"empty prefixes keep nothing", []string{},
			map[string]string{"settlement.id": "4821"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Business{Prefixes: tt.prefixes}.Filter(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
