package pgpurepy_test

import (
	"testing"

	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }
