"""Money transactions: debits checked against balance, status and the fraud threshold."""
