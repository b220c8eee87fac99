"""vaeserve: serves any checkpoint that meets the format-1 contract. Imports neither model/ nor training/."""
