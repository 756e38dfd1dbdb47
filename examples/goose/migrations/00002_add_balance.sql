-- +goose Up
ALTER TABLE goose_accounts ADD COLUMN balance numeric(12,2) NOT NULL DEFAULT 0;
INSERT INTO goose_accounts (email, balance) VALUES ('ada@example.com', 10.50), ('alan@example.com', 3);

-- +goose Down
DELETE FROM goose_accounts WHERE email IN ('ada@example.com', 'alan@example.com');
ALTER TABLE goose_accounts DROP COLUMN balance;
