// Command gorm shows pgpurepy under GORM: gorm.io/driver/postgres is given
// the *sql.DB (postgres.Config{Conn: db}), so GORM builds PostgreSQL SQL and
// pgpurepy runs it on its own pool. AutoMigrate, Create, Find and a
// transaction work as with any PostgreSQL driver, and the extension works on
// gormDB.DB().
//
//	cd examples && go run ./gorm
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/examples/internal/demo"
)

// Product is the GORM model; AutoMigrate creates the table gorm_products.
type Product struct {
	ID        uint   `gorm:"primaryKey"`
	Code      string `gorm:"uniqueIndex;not null"`
	Name      string
	Price     int64
	Tags      []Tag
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TableName keeps the example's tables apart from other examples'.
func (Product) TableName() string { return "gorm_products" }

// Tag belongs to a Product.
type Tag struct {
	ID        uint `gorm:"primaryKey"`
	ProductID uint
	Label     string
}

// TableName names the tag table.
func (Tag) TableName() string { return "gorm_tags" }

func main() { demo.Run(run) }

func run(ctx context.Context, dsn string) error {
	sqlDB, err := pgpurepy.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer sqlDB.Close()

	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger: logger.Default.LogMode(logger.Silent),
	})
	if err != nil {
		return fmt.Errorf("gorm open: %w", err)
	}
	db = db.WithContext(ctx)

	if err := db.Migrator().DropTable(&Tag{}, &Product{}); err != nil {
		return fmt.Errorf("drop tables: %w", err)
	}
	if err := db.AutoMigrate(&Product{}, &Tag{}); err != nil {
		return fmt.Errorf("auto migrate: %w", err)
	}
	fmt.Println("AutoMigrate: created gorm_products and gorm_tags")
	// An application migrates at every start: on existing tables GORM
	// reads their columns (with pgx's QueryExecModeSimpleProtocol as the
	// first argument, which pgpurepy takes as pgx's stdlib does).
	if err := db.AutoMigrate(&Product{}, &Tag{}); err != nil {
		return fmt.Errorf("auto migrate again: %w", err)
	}
	fmt.Println("AutoMigrate: again, on the existing tables")

	products := []Product{
		{Code: "D42", Name: "Widget", Price: 100, Tags: []Tag{{Label: "new"}, {Label: "blue"}}},
		{Code: "F17", Name: "Gadget", Price: 250},
		{Code: "X01", Name: "Gizmo", Price: 75, Tags: []Tag{{Label: "sale"}}},
	}
	if err := db.Create(&products).Error; err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Printf("Create: %d products with ids %d, %d, %d\n", len(products), products[0].ID, products[1].ID, products[2].ID)

	var p Product
	if err := db.Preload("Tags").First(&p, "code = ?", "D42").Error; err != nil {
		return fmt.Errorf("first: %w", err)
	}
	fmt.Printf("First:  %s %q price %d, %d tags\n", p.Code, p.Name, p.Price, len(p.Tags))

	// A transaction: the second update fails on the unique index, so the
	// first one is rolled back too.
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Product{}).Where("code = ?", "F17").Update("price", 1).Error; err != nil {
			return err
		}
		return tx.Model(&Product{}).Where("code = ?", "X01").Update("code", "D42").Error
	})
	if err == nil {
		return errors.New("transaction with a duplicate code succeeded")
	}
	fmt.Printf("Transaction rolled back: %v\n", err)

	var cheap []Product
	if err := db.Where("price < ?", 200).Order("price").Find(&cheap).Error; err != nil {
		return fmt.Errorf("find: %w", err)
	}
	for _, c := range cheap {
		fmt.Printf("Find:   %s %q price %d\n", c.Code, c.Name, c.Price)
	}
	var gadget Product
	if err := db.First(&gadget, "code = ?", "F17").Error; err != nil {
		return err
	}
	if gadget.Price != 250 {
		return fmt.Errorf("rolled-back update is visible: price %d", gadget.Price)
	}

	// gormDB.DB() is the pgpurepy *sql.DB, so the extension works.
	inner, err := db.DB()
	if err != nil {
		return err
	}
	ext, err := pgpurepy.Ext(inner)
	if err != nil {
		return err
	}
	row, err := ext.FetchOne(ctx, `SELECT count(*) AS n, sum(price) AS total FROM gorm_products`)
	if err != nil {
		return err
	}
	var n, total int64
	if err := row.Scan(&n, &total); err != nil {
		return err
	}
	st := ext.Stats()
	fmt.Printf("pgpurepy.Ext(gormDB.DB()): %d products worth %d; pool MaxConnections=%d IdleConnections=%d Acquires=%d ConnectionsOpened=%d\n",
		n, total, st.MaxConnections, st.IdleConnections, st.Acquires, st.ConnectionsOpened)
	return nil
}
