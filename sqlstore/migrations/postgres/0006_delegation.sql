-- Delegation (docs/design.md §1 "Multi-agent chains"): a child run names its
-- ancestors, parent first, as JSON [{run, agent}]; its tokens carry them as
-- act claims and policy reads them.
ALTER TABLE runs ADD COLUMN chain TEXT NOT NULL DEFAULT '[]';
