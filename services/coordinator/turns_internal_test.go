package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"
)

// One input of a saga at a time: a second waits for the first to release
// its turn, an input of another saga does not, and one whose context ends
// while waiting gives up and leaves nothing behind.
func TestTurnsOneInputOfASagaAtATime(t *testing.T) {
	t.Parallel()
	var tu turns
	ctx := context.Background()
	first, err := tu.take(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tu.take(ctx, "s2")
	if err != nil {
		t.Fatal(err)
	}
	other()
	got := make(chan func(), 1)
	go func() {
		second, err := tu.take(ctx, "s1")
		if err != nil {
			t.Error(err)
		}
		got <- second
	}()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := tu.take(short, "s1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third take while the first holds the turn: %v", err)
	}
	select {
	case <-got:
		t.Fatal("a second input took the saga's turn while the first held it")
	case <-time.After(100 * time.Millisecond):
	}
	first()
	select {
	case second := <-got:
		second()
	case <-time.After(5 * time.Second):
		t.Fatal("the second input did not get its turn once the first released it")
	}
	if n := tu.waiting(); n != 0 {
		t.Fatalf("%d sagas still queued once every input is done", n)
	}
}
