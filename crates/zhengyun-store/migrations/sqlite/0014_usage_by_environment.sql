-- One environment's intervals over a range (right-sizing reads 30 days of them) without
-- scanning every environment's intervals of those days.
CREATE INDEX usage_intervals_by_environment ON usage_intervals (environment, end_s);
