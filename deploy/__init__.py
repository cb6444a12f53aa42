"""Local start-up of SmartPark's services from Debian's packages, and production layouts."""
