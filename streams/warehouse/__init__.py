"""The metrics warehouse: validated events as Parquet files, partitioned by date and hour."""
