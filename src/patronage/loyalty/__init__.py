"""The membership system: program, tiers, the points ledger, rewards, coupons and referrals."""
