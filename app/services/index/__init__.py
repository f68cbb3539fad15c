"""The SIPAS index: pure formulas on counts (`formulas`) and the SQL that produces the counts."""
