"""Money given to bring people in: invitations and their rewards, redemption codes and their batches."""
