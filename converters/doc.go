// Package converters maps PostgreSQL types that pgtype does not know by default (enums, composites, domains, json
// documents, extension types) to Go types, in both directions:
//
//	c := converters.Composite[Item]("item")              // or Enum, JSON, Domain, Func
//	err := converters.Register(m, c, info, true)         // info read from pg_type by the caller
//	err = m.Scan(info.ArrayOID, format, src, &items)     // items []Item; Encode works the other way
//
// A [Converter] names its PostgreSQL type and its Go type T and builds a [pgtype.Codec] from the catalog description
// of the type, a [TypeInfo]. [Register] puts the codec on a connection's [pgtype.Map] under the type's OID, and an
// array codec under the array type's OID, so columns and parameters of the type come and go as T, []T and []*T.
// The root package runs the catalog query and calls Register on every connection; this package never talks to a
// server.
//
// # Ready-made converters
//
//   - [Enum] for enum types into a string type (binary and text).
//   - [Composite] for composite (row) types into a struct, matching attributes to fields by `db` tag or by order
//     (binary when every attribute type supports it, else text).
//   - [JSON] for json, jsonb and domains over them into any T via encoding/json (binary and text).
//   - [Domain] for domains, using the base type's codec with the T the base type scans into (the base's formats).
//   - [Func] for anything else, from a decode and an encode function over the text format (text only).
//
// # NULL
//
// Scanning SQL NULL into *T gives the zero T when T is a pointer, slice, map or interface type and an error
// otherwise; scan into **T, or []*T for arrays with NULL elements, to receive nil. Domains follow their base type
// (sql.Null* and pgtype types accept NULL). Composite attributes need nullable fields to hold NULL; see [Composite].
//
// # Order of registration
//
// A codec is built against the Map as it is when Register runs: register a composite's attribute types (enums,
// other composites, domains) and a domain's base type before the type that uses them.
//
// # Errors
//
// Register fails when the catalog description does not fit the converter (an enum converter on a composite type, a
// struct whose fields do not match the attributes). A value that cannot be decoded or encoded gives an error that
// names the PostgreSQL type and the Go type and wraps the cause.
//
// # Writing a converter
//
// The quickest way is [Func]:
//
//	converters.Func("ltree", func(s string) (Path, error) { return ParsePath(s) },
//		func(p Path) (string, error) { return p.String(), nil })
//
// For a binary format or a type that needs the catalog (typmods, attributes), implement [Converter]: TypeName and
// GoType describe it, and Codec returns a [pgtype.Codec] for the TypeInfo it is given, or an error when the type is
// not one it can handle. The codec must not change after it is returned, must plan scans into *T and encodes of T,
// and should leave other targets to the Map by returning nil plans; pgtype then derives **T, []T and []*T.
package converters
