package jsonscan

import (
	"strings"
	"testing"
)

var table = Compile(Node{
	"a": Leaf(0), "b": Leaf(1), "c": Leaf(2), "d": Leaf(3), "e": Leaf(4), "f": Leaf(5),
	"o": Object(Node{"id": Leaf(6), "p": Object(Node{"id": Leaf(7)})}),
})

// Capture finds the named values, of every kind, at offsets relative to
// the value it scans; keys are compared unescaped, a repeated key keeps its
// last value, and an object is descended into only where the table says.
func TestCapture(t *testing.T) {
	in := `xx {"a":"t","b":"e\n","c":-1.5e3,"d":true,"e":null,"f":[1,{"a":2}],"x":{"a":3},` +
		`"o":{"\u0069d":7,"p":{"id":"n"},"p":{"q":1}},"o":[],"c":0}`
	s := At([]byte(in), 3)
	var f Fields
	if !s.Capture(table, &f) || !s.Done() || !f.Of(table) || f.Of(Compile(Node{})) {
		t.Fatalf("capture failed at %d", s.Pos())
	}
	msg := in[3:]
	var got []string
	for i := range 8 {
		v := f.Get(i)
		got = append(got, string(v.Kind)+msg[v.Start:v.End])
	}
	want := []string{`st`, `ee\n`, `n0`, `btrue`, `znull`, `o[1,{"a":2}]`, `n7`, `sn`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("captured %q, want %q", got, want)
	}
}

// The scanner is strict: what encoding/json refuses, it refuses too, and
// nesting stops at MaxDepth.
func TestStrict(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2)
	for _, in := range []string{"", "{", `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a":1 "b":2}`, `{"a":tru}`, `"x`,
		`"\x"`, `"\u12"`, "\"\x1f\"", `01`, `1.`, `1e`, `-`, `{a:1}`, deep} {
		s := At([]byte(in), 0)
		var f Fields
		if s.Capture(table, &f) && s.Done() {
			t.Errorf("%q accepted", in)
		}
	}
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if s := At([]byte(ok), 0); !s.Value() || !s.Done() {
		t.Errorf("%d levels refused", MaxDepth)
	}
}
