"""What every area uses: settings files, byte sizes, progress and console output."""
