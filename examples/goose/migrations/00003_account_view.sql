-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION goose_total_balance() RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT coalesce(sum(balance), 0) FROM goose_accounts);
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION goose_total_balance();
